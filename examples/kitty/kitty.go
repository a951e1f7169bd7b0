package main

// The port of Learn You Some Erlang's kitty_gen_server ("Clients and
// Servers"). Everything else in this folder is the program around it (the
// Erlang shell's part).

import (
	"context"

	"github.com/reign-go/reign"
	"github.com/reign-go/reign/gen"
)

// Cat is -record(cat, {name, color=green, description}).
type Cat struct{ Name, Color, Description string }

// The calls: {order, Name, Color, Description} and terminate.
type (
	Order     struct{ Name, Color, Description string }
	CloseShop struct{}
)

// messageTypes cross between nodes: register them on every node.
var messageTypes = []any{Cat{}, Order{}, CloseShop{}}

// The client API: order_cat/4 (synchronous), return_cat/2 (asynchronous)
// and close_shop/1 (synchronous). shop is the server's name or Address.
func orderCat(ctx context.Context, node *reign.Node, shop, name, color, desc string) (Cat, error) {
	return gen.Call[Cat](ctx, node, shop, Order{name, color, desc})
}

func returnCat(node *reign.Node, shop string, cat Cat) error { return gen.Cast(node, shop, cat) }

func closeShop(ctx context.Context, node *reign.Node, shop string) (string, error) {
	return gen.Call[string](ctx, node, shop, CloseShop{})
}

// kitty is the server; its state is the cats in stock.
type kitty struct {
	cats []Cat
	say  func(format string, args ...any)
}

func (k *kitty) Init(*gen.Process) error { k.cats = nil; return nil }

func (k *kitty) HandleCall(p *gen.Process, req any) (any, error) {
	switch r := req.(type) {
	case Order:
		if len(k.cats) == 0 {
			return Cat(r), nil // make_cat
		}
		cat := k.cats[0] // got to empty the stock
		k.cats = k.cats[1:]
		return cat, nil
	case CloseShop:
		p.Stop(nil) // {stop, normal, ok, Cats}
		return "ok", nil
	}
	return nil, gen.ErrUnhandled
}

// HandleCast takes returned cats; anything else crashes the server, as
// handle_cast({return, Cat = #cat{}}, Cats) does not match it.
func (k *kitty) HandleCast(_ *gen.Process, msg any) error {
	cat, ok := msg.(Cat)
	if !ok {
		return gen.ErrUnhandled
	}
	k.cats = append([]Cat{cat}, k.cats...)
	return nil
}

func (k *kitty) HandleInfo(_ *gen.Process, msg any) error {
	k.say("Unexpected message: %v", msg)
	return nil
}

func (k *kitty) Terminate(_ *gen.Process, reason error) {
	if reason == nil { // terminate(normal, Cats)
		for _, c := range k.cats {
			k.say("%q was set free.", c.Name)
		}
	}
}
