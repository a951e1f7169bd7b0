// Package gen is Erlang's gen_server for reign: a server is a Go value
// whose methods are the callbacks, run by a Service that owns its mailbox,
// registers its name, takes one message at a time, and turns every failure
// into an exit that callers, monitors and the supervisor see.
//
//	gen_server                      gen
//	----------                      ---
//	init/1                          Init(p) error              (optional: Initer)
//	handle_call/3                   HandleCall(p, req) (any, error)
//	handle_cast/2                   HandleCast(p, msg) error   (optional: CastHandler)
//	handle_info/2                   HandleInfo(p, msg) error   (optional: InfoHandler)
//	terminate/2                     Terminate(p, reason)       (optional: Terminator)
//	start_link({local, N}, M, A, _) New(node, N, srv), added to a suture.Supervisor
//	gen_server:call(N, Req)         Call[Reply](ctx, node, N, req): 5 s unless ctx has a deadline
//	gen_server:cast(N, Msg)         Cast(node, N, msg)
//	{reply, R, S, Timeout}          SetTimeout(d) in the handler: HandleInfo(Timeout{})
//	{noreply, S} + gen_server:reply DeferReply, then Request.Reply
//	{stop, Reason, Reply, S}        Stop(reason) in the handler, then return the reply
//	erlang:send_after, cancel_timer SendAfter, CancelTimer; Process.SendAfter to self
//
// # The callbacks
//
// A server's state is its own fields: the Service calls one callback at a
// time, on the goroutine running Serve, so they need no locks. Init runs at
// every (re)start and must set the state up from scratch, as init/1
// builds a new State: a restarted server must not inherit the state its
// crashed run left behind.
//
// HandleCall answers a call: its reply goes back to the caller's Call. A
// returned error is a reply too (Erlang's {reply, {error, R}, S}): the
// caller's Call returns it as its error and the server goes on. To say that
// a request is not one it knows, HandleCall returns ErrUnhandled (or an
// error wrapping it), and the caller fails at once with an error naming the
// server and the request's type, instead of waiting for its timeout.
//
// Every message that is not a call goes to HandleCast: what Cast and a
// plain Address.Send deliver (Go has no separate cast envelope that could
// cross nodes). HandleInfo gets what the system sends: reign.MailboxClosed
// (a monitor's 'DOWN'), reign.MultipleClaim, reign.NodeUp and reign.NodeDown
// (monitor_nodes), reign.GroupChanged (pg's monitor), Timeout, and the messages of
// timers set with Process.SendAfter. A server without HandleInfo drops
// these, as the default handle_info logs and drops them.
//
// # Exits
//
// A server stops, and its mailbox closes, when:
//   - a callback panics: the reason is a *PanicError;
//   - Init, HandleCast or HandleInfo returns an error, or a cast reaches a
//     server that has no HandleCast or answers ErrUnhandled (Erlang's
//     function_clause): the reason is that error;
//   - a callback calls Stop(reason): after it returns (and after the reply,
//     for HandleCall), with that reason; nil is a normal stop;
//   - Serve's context ends (the supervisor shuts it down).
//
// Then Terminate runs with the reason, and the mailbox is closed with it
// (reign.Mailbox.CloseWithError; a shutdown or a normal stop closes it
// normally): calls in flight fail at once with an
// error that wraps reign.ErrMailboxClosed and the reason, monitors get a
// reign.MailboxClosed with Reason Abnormal and Err set to it (across nodes,
// its text), and the name is released. Serve returns the reason, so a
// suture.Supervisor restarts the server (with its backoff); a normal stop
// returns suture.ErrDoNotRestart (Erlang's transient restart), and a
// shutdown returns the context's error.
//
// # Across nodes
//
// Call and Cast work with a server on any node of the cluster: its name is
// looked up in reign's cluster-wide registry, and requests, replies and
// casts travel as messages, so their types must be registered on both
// nodes (reign.Node.RegisterType). An error reply whose type is not
// registered arrives as a *reign.RemoteError with its text.
package gen
