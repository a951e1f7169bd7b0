package main

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// An Agent is a state machine that moves on the messages it receives and
// may send messages to the virtual destinations of its routing table. It
// does not know which box it runs on, nor where its destinations are.
//
// Its box calls its methods from one goroutine, one call at a time (Init,
// then Run, then Deliver for each message, then Halt), so an agent needs
// no locks.
type Agent interface {
	// Init reads the agent's attributes and keeps env. It only checks
	// and remembers: every box inits every agent of the configuration,
	// to refuse a bad configuration whole, wherever it is started.
	Init(attrs json.RawMessage, env Env) error
	// Run starts the agent on its own box, before any Deliver (a kvs
	// replays its log here). An error stops the box.
	Run() error
	// Deliver hands the agent data, arrived on port (Console: a line of
	// the box's standard input). An error is reported and the message
	// dropped; the agent goes on.
	Deliver(data string, port Port) error
	// Halt stops the agent; nothing is delivered after it.
	Halt()
}

// Env is what a box gives an agent.
type Env struct {
	// ID is the agent's own global ID. GoOvid's agents do not use it
	// unless an attribute repeats it (a client's "myid"); it is here for
	// messages.
	ID AgentID
	// Send sends data to every physical agent that virtual destination
	// v is routed to. It fails only if v has no route; a destination
	// that is down gets the message when it comes back (see README).
	Send func(v VirtualID, data string) error
	// HasRoute reports whether v is in the agent's routing table, for
	// Init to check that the destinations it needs are configured.
	HasRoute func(v VirtualID) bool
	// Printf prints a line on the box's standard output.
	Printf func(format string, a ...any)
}

// agentType is one kind of agent: how to make one, and whether it reads
// its box's console.
type agentType struct {
	new     func() Agent
	console bool
}

// agentTypes are the agent types a configuration may name, by the name
// its "type" field uses.
var agentTypes = map[string]agentType{
	"dummy":  {new: func() Agent { return &Dummy{} }},
	"tty":    {new: func() Agent { return &TTY{} }, console: true},
	"client": {new: func() Agent { return &Client{} }},
	"kvs":    {new: func() Agent { return &KVS{} }},
	"chat":   {new: func() Agent { return &Chat{} }, console: true},
}

// needRoutes checks that env has a route for each of vs; what says what
// the agent uses each for.
func needRoutes(env Env, what string, vs ...VirtualID) error {
	for _, v := range vs {
		if !env.HasRoute(v) {
			return fmt.Errorf("no route %d (%s)", v, what)
		}
	}
	return nil
}

// decodeAttrs decodes attrs into v, refusing unknown fields.
func decodeAttrs(attrs json.RawMessage, v any) error {
	if err := strictUnmarshal(attrs, v); err != nil {
		return fmt.Errorf("attrs: %w", err)
	}
	return nil
}

// Dummy does nothing: a placeholder, as in GoOvid.
type Dummy struct{}

// Init implements Agent.
func (*Dummy) Init(json.RawMessage, Env) error { return nil }

// Run implements Agent.
func (*Dummy) Run() error { return nil }

// Deliver implements Agent.
func (*Dummy) Deliver(string, Port) error { return nil }

// Halt implements Agent.
func (*Dummy) Halt() {}

// strictUnmarshal decodes data into v, refusing fields v lacks.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
