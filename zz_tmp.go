package reign

import "context"

type ClusterSpec struct{}
type cluster struct{}

func newCluster(n *Node) (*cluster, error)                 { return nil, nil }
func (c *cluster) serve(ctx context.Context) error         { return nil }
func (c *cluster) broadcastClaim(name string, a Address)   {}
func (c *cluster) broadcastRelease(name string, a Address) {}
func (n *Node) sendRemote(a Address, msg any) error        { return ErrNodeUnreachable }
func (n *Node) linkRemote(a, notify Address) {
	n.notifyClosed(notify, MailboxClosed{Address: a, Reason: NoConnection})
}
func (n *Node) unlinkRemote(a, notify Address)                    {}
func (n *Node) unlinkWatcher(a Address)                           {}
func (n *Node) sendClosedRemote(notify Address, mc MailboxClosed) {}
