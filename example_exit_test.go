package reign_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reign-go/reign"
)

var errDiskFull = errors.New("disk full")

// CloseWithError is an exit with a reason: watchers see it in
// MailboxClosed.Err, and a Call waiting on the mailbox fails with it.
func ExampleMailbox_CloseWithError() {
	node, _ := reign.NewNode(reign.Config{})
	server, serverBox := node.NewMailbox()
	watcher, watcherBox := node.NewMailbox()
	server.OnCloseNotify(watcher) // a monitor

	go func() { // a server that takes one request and dies of it
		_, _ = serverBox.Receive(context.Background())
		serverBox.CloseWithError(fmt.Errorf("saving: %w", errDiskFull))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := reign.Call(ctx, server, "save")
	fmt.Println(errors.Is(err, reign.ErrMailboxClosed), errors.Is(err, errDiskFull))

	msg, _ := watcherBox.Receive(ctx)
	down := msg.(reign.MailboxClosed)
	fmt.Println(down.Reason, down.Err)
	// Output:
	// true true
	// abnormal saving: disk full
}
