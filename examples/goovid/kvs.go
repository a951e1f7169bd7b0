package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The key-value store demo: tty -> client -> kvs, as GoOvid's kvs.json
// wires them. The messages are GoOvid's text lines:
//
//	tty -> client (its route 1, port 1):   "put KEY VALUE" | "get KEY"
//	client -> kvs (client's route 2):      "CLIENTID put KEY VALUE" | "CLIENTID get KEY"
//	kvs -> client (kvs's route CLIENTID):  "putok KEY" | "getok KEY VALUE" | "getbad KEY"
//	client -> tty (client's route 1):      the line the tty prints
//
// A kvs answers to the virtual destination named by the client's ID, so
// its routing table has one entry per client, as in GoOvid.

// TTY forwards each well-formed command typed on its box's console to its
// client (virtual destination 1), and prints whatever comes back.
type TTY struct{ env Env }

// Init implements Agent.
func (t *TTY) Init(attrs json.RawMessage, env Env) error {
	t.env = env
	if err := decodeAttrs(attrs, &struct{}{}); err != nil {
		return err
	}
	return needRoutes(env, "the client", 1)
}

// Run implements Agent.
func (t *TTY) Run() error { return nil }

// Deliver implements Agent.
func (t *TTY) Deliver(data string, port Port) error {
	if port != Console {
		t.env.Printf("%s", data)
		return nil
	}
	cmd, rest, _ := strings.Cut(strings.TrimSpace(data), " ")
	key, value, _ := strings.Cut(strings.TrimSpace(rest), " ")
	value = strings.TrimSpace(value)
	switch {
	case cmd == "":
		return nil
	case cmd == "put" && key != "" && value != "":
		return t.env.Send(1, "put "+key+" "+value)
	case cmd == "get" && key != "" && value == "":
		return t.env.Send(1, "get "+key)
	}
	t.env.Printf("invalid command %q: want put KEY VALUE or get KEY", data)
	return nil
}

// Halt implements Agent.
func (t *TTY) Halt() {}

// Client turns the tty's commands (port 1) into requests to the kvs
// (virtual destination 2), and the kvs's answers (port 2) into lines for
// the tty (virtual destination 1). Its attribute "myid" is the ID the kvs
// answers to.
type Client struct {
	env  Env
	myID uint16
}

// Init implements Agent.
func (c *Client) Init(attrs json.RawMessage, env Env) error {
	c.env = env
	var a struct {
		MyID *uint16 `json:"myid"`
	}
	if err := decodeAttrs(attrs, &a); err != nil {
		return err
	}
	if a.MyID == nil {
		return fmt.Errorf("attrs: no \"myid\" (the ID the kvs answers to)")
	}
	c.myID = *a.MyID
	return needRoutes(env, "the tty, then the kvs", 1, 2)
}

// Run implements Agent.
func (c *Client) Run() error { return nil }

// Deliver implements Agent.
func (c *Client) Deliver(data string, port Port) error {
	switch port {
	case 1: // a command from the tty
		return c.env.Send(2, strconv.Itoa(int(c.myID))+" "+data)
	case 2: // an answer from the kvs
		kind, rest, _ := strings.Cut(data, " ")
		key, value, _ := strings.Cut(rest, " ")
		switch kind {
		case "putok":
			return c.env.Send(1, "put "+key+": ok")
		case "getok":
			return c.env.Send(1, key+" = "+value)
		case "getbad":
			return c.env.Send(1, "get "+key+": no such entry")
		}
		return fmt.Errorf("unexpected answer %q from the kvs", data)
	}
	return fmt.Errorf("unexpected message %q on port %d", data, port)
}

// Halt implements Agent.
func (c *Client) Halt() {}

// KVS is a key-value store with put and get, kept durable by an
// append-only log (attribute "log": its file). It takes requests on port
// 1 and answers to the virtual destination named by the request's client
// ID.
type KVS struct {
	env   Env
	path  string
	log   *kvLog
	store map[string]string
}

// Init implements Agent.
func (k *KVS) Init(attrs json.RawMessage, env Env) error {
	k.env = env
	var a struct {
		Log string `json:"log"`
	}
	if err := decodeAttrs(attrs, &a); err != nil {
		return err
	}
	if a.Log == "" {
		return fmt.Errorf("attrs: no \"log\" (the file of the kvs's log)")
	}
	k.path = a.Log
	return nil
}

// Run opens the log and replays it into the store.
func (k *KVS) Run() error {
	k.store = map[string]string{}
	l, n, err := openKVLog(k.path, func(key, value string) { k.store[key] = value })
	if err != nil {
		return err
	}
	k.log = l
	k.env.Printf("kvs %d: log %s: %d puts replayed, %d keys", k.env.ID, k.path, n, len(k.store))
	return nil
}

// Deliver implements Agent: a put is on disk (fsync) before it is
// answered.
func (k *KVS) Deliver(data string, port Port) error {
	f := strings.SplitN(data, " ", 4)
	if port != 1 || len(f) < 3 {
		return fmt.Errorf("unexpected request %q on port %d", data, port)
	}
	client, err := parseID(f[0])
	if err != nil {
		return fmt.Errorf("request %q: bad client ID", data)
	}
	reply := func(s string) error { return k.env.Send(VirtualID(client), s) }
	switch {
	case f[1] == "put" && len(f) == 4:
		if err := k.log.Append(f[2], f[3]); err != nil {
			return err // not stored, not answered: the client sees no "ok"
		}
		k.store[f[2]] = f[3]
		return reply("putok " + f[2])
	case f[1] == "get" && len(f) == 3:
		if v, ok := k.store[f[2]]; ok {
			return reply("getok " + f[2] + " " + v)
		}
		return reply("getbad " + f[2])
	}
	return fmt.Errorf("invalid request %q", data)
}

// Halt closes the log.
func (k *KVS) Halt() {
	if k.log != nil {
		k.log.Close()
	}
}
