package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Chat sends each line typed on its box's console to its contacts, and
// prints the lines it receives. Attributes: "myname", and "contacts",
// the virtual destinations each line goes to. A contact routed to several
// agents is a multicast: one send, every agent of the route gets it.
//
// The message is GoOvid's "SENDERNAME TEXT"; the port is not used.
type Chat struct {
	env      Env
	name     string
	contacts []VirtualID
}

// Init implements Agent.
func (c *Chat) Init(attrs json.RawMessage, env Env) error {
	c.env = env
	var a struct {
		MyName   string      `json:"myname"`
		Contacts []VirtualID `json:"contacts"`
	}
	if err := decodeAttrs(attrs, &a); err != nil {
		return err
	}
	if a.MyName == "" || strings.ContainsAny(a.MyName, " \t\n") {
		return fmt.Errorf("attrs: \"myname\" must be one word, not %q", a.MyName)
	}
	c.name, c.contacts = a.MyName, a.Contacts
	return needRoutes(env, "a contact", a.Contacts...)
}

// Run implements Agent.
func (c *Chat) Run() error { return nil }

// Deliver implements Agent.
func (c *Chat) Deliver(data string, port Port) error {
	if port == Console {
		text := strings.TrimSpace(data)
		if text == "" {
			return nil
		}
		for _, v := range c.contacts {
			if err := c.env.Send(v, c.name+" "+text); err != nil {
				return err
			}
		}
		return nil
	}
	sender, text, _ := strings.Cut(data, " ")
	c.env.Printf("[%s] %s > %s", c.name, sender, text)
	return nil
}

// Halt implements Agent.
func (c *Chat) Halt() {}
