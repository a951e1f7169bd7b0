package reignhttp

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/reign-go/reign"
)

// NewCollector returns a prometheus.Collector of node n's metrics, read
// from n.SnapshotWith and n.Stats at each scrape (nothing is counted in
// between, and nothing is registered anywhere: register it in a registry
// of your own, or let NewHandler do it). Every metric carries the label
// node="<id>", so the collectors of several nodes can share a registry.
//
// Metrics:
//
//	reign_uptime_seconds                 gauge   since NewNode
//	reign_mailboxes                      gauge   open mailboxes
//	reign_mailbox_queued_messages        gauge   messages waiting, all mailboxes together
//	reign_mailbox_queue_length_max       gauge   the longest queue
//	reign_name_queue_length{name}        gauge   queue of this node's mailbox registered
//	                                             under name (one series per local name,
//	                                             never one per mailbox)
//	reign_names                          gauge   names known, cluster-wide
//	reign_name_conflicts                 gauge   names claimed by more than one node
//	reign_groups                         gauge   process groups known, cluster-wide
//	reign_group_members_local            gauge   this node's group memberships, all groups together
//	reign_messages_dropped_total{reason} counter messages from peers dropped: closed,
//	                                             unknown_type, undecodable, stale
//	reign_broadcast_skipped_total        counter group members Broadcast skipped: their node's
//	                                             frame limit is below the message
//	reign_connections_total              counter connections established
//	reign_connections_refused_total      counter incoming connections refused
//	reign_peers_up                       gauge   peers connected now
//	reign_peer_up{peer}                  gauge   1 if that peer is connected now, else 0
//	reign_connection_closes_total{reason} counter connections ended or refused, by CloseReason
//	reign_limits_exceeded_total{limit}   counter connections closed for crossing a per-peer bound
//	reign_peer_bytes_total{peer,direction}    counter frame bytes to (out) and from (in) the peer
//	reign_peer_frames_total{peer,direction}   counter frames to and from the peer
//	reign_peer_messages_total{peer,direction} counter messages to and from the peer
//	reign_peer_rtt_seconds{peer}         gauge   the last round-trip time a Ping measured
//	reign_cert_expiry_warnings_total     counter warnings that a certificate expires within 30 days
//	reign_cert_not_after_timestamp_seconds gauge when the first of the node's certificates expires
func NewCollector(n *reign.Node) prometheus.Collector {
	labels := prometheus.Labels{"node": strconv.Itoa(int(n.ID()))}
	d := func(name, help string, varLabels ...string) *prometheus.Desc {
		return prometheus.NewDesc("reign_"+name, help, varLabels, labels)
	}
	return &collector{
		n:             n,
		uptime:        d("uptime_seconds", "Seconds since the node was made."),
		mailboxes:     d("mailboxes", "Open mailboxes."),
		queued:        d("mailbox_queued_messages", "Messages waiting in all mailboxes together."),
		queueMax:      d("mailbox_queue_length_max", "The longest mailbox queue."),
		nameQueue:     d("name_queue_length", "Queue length of this node's mailbox registered under the name.", "name"),
		names:         d("names", "Registered names this node knows of, cluster-wide."),
		nameConflicts: d("name_conflicts", "Names claimed by more than one node."),
		groups:        d("groups", "Process groups this node knows of, cluster-wide."),
		groupLocal:    d("group_members_local", "This node's process group memberships, all groups together."),
		dropped:       d("messages_dropped_total", "Messages from peers dropped, by reason.", "reason"),
		skipped:       d("broadcast_skipped_total", "Group members Broadcast skipped because their node's frame limit is below the message."),
		connects:      d("connections_total", "Connections to peers established (first and re-connections)."),
		refused:       d("connections_refused_total", "Incoming connections refused (bad certificates, failed handshakes, unknown nodes)."),
		peersUp:       d("peers_up", "Peers connected now."),
		peerUp:        d("peer_up", "1 if the peer is connected now, else 0.", "peer"),
		closes:        d("connection_closes_total", "Connections ended or refused, by close reason.", "reason"),
		limits:        d("limits_exceeded_total", "Connections closed because the peer crossed a per-peer bound, by bound.", "limit"),
		peerBytes:     d("peer_bytes_total", "Frame bytes to (out) and from (in) the peer, headers included.", "peer", "direction"),
		peerFrames:    d("peer_frames_total", "Frames to (out) and from (in) the peer.", "peer", "direction"),
		peerMessages:  d("peer_messages_total", "Messages (Message, Request, Reply frames) to (out) and from (in) the peer.", "peer", "direction"),
		peerRTT:       d("peer_rtt_seconds", "The last round-trip time to the peer measured by a Ping (absent before the first).", "peer"),
		certWarnings:  d("cert_expiry_warnings_total", "Warnings logged that a certificate of the node expires within 30 days."),
		certNotAfter:  d("cert_not_after_timestamp_seconds", "When the first of the node's certificate and its trusted CA certificates expires (Unix time)."),
	}
}

type collector struct {
	n                                                 *reign.Node
	uptime, mailboxes, queued, queueMax               *prometheus.Desc
	nameQueue, names, nameConflicts, dropped, skipped *prometheus.Desc
	connects, refused, peersUp, peerUp                *prometheus.Desc
	closes, limits                                    *prometheus.Desc
	peerBytes, peerFrames, peerMessages               *prometheus.Desc
	peerRTT, certWarnings, certNotAfter               *prometheus.Desc
	groups, groupLocal                                *prometheus.Desc
}

// dropReasons maps each reason label of reign_messages_dropped_total to
// its counter in reign.Stats. (When Stats counts drops and closes by a
// typed reason, this table becomes a loop over it.)
var dropReasons = []struct {
	label string
	count func(reign.Stats) uint64
}{
	{"closed", func(s reign.Stats) uint64 { return s.DroppedClosed }},
	{"unknown_type", func(s reign.Stats) uint64 { return s.DroppedUnknownType }},
	{"undecodable", func(s reign.Stats) uint64 { return s.DroppedUndecodable }},
	{"stale", func(s reign.Stats) uint64 { return s.DroppedStale }},
	{"reserved_type", func(s reign.Stats) uint64 { return s.DroppedReserved }},
	{"unmatched_reply", func(s reign.Stats) uint64 { return s.DroppedUnmatchedReply }},
}

// Describe sends the descriptors of every metric.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.uptime, c.mailboxes, c.queued, c.queueMax, c.nameQueue,
		c.names, c.nameConflicts, c.dropped, c.skipped, c.connects, c.refused, c.peersUp, c.peerUp,
		c.closes, c.limits, c.peerBytes, c.peerFrames, c.peerMessages, c.peerRTT, c.certWarnings, c.certNotAfter, c.groups, c.groupLocal} {
		ch <- d
	}
}

// Collect reads the node now and sends every metric.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.SnapshotWith(reign.SnapshotOptions{MaxMailboxes: -1}) // totals only
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	gauge(c.uptime, s.Uptime.Seconds())
	gauge(c.mailboxes, float64(s.MailboxCount))
	gauge(c.queued, float64(s.Queued))
	gauge(c.queueMax, float64(s.MaxQueue))
	conflicts := 0
	for _, ni := range s.Names {
		if ni.Local {
			gauge(c.nameQueue, float64(ni.Queued), ni.Name)
		}
		if len(ni.Claims) > 1 {
			conflicts++
		}
	}
	gauge(c.names, float64(len(s.Names)))
	local := 0
	for _, g := range s.Groups {
		local += g.Local
	}
	gauge(c.groups, float64(len(s.Groups)))
	gauge(c.groupLocal, float64(local))
	gauge(c.nameConflicts, float64(conflicts))
	for _, r := range dropReasons {
		counter(c.dropped, r.count(s.Stats), r.label)
	}
	counter(c.skipped, s.Stats.BroadcastSkipped)
	counter(c.connects, s.Stats.Connects)
	counter(c.refused, s.Stats.Refused)
	gauge(c.peersUp, float64(s.Stats.PeersUp))
	for _, p := range s.Peers {
		up := 0.0
		if p.Up {
			up = 1
		}
		peer := strconv.Itoa(int(p.Node))
		gauge(c.peerUp, up, peer)
		counter(c.peerBytes, p.BytesIn, peer, "in")
		counter(c.peerBytes, p.BytesOut, peer, "out")
		counter(c.peerFrames, p.FramesIn, peer, "in")
		counter(c.peerFrames, p.FramesOut, peer, "out")
		counter(c.peerMessages, p.MessagesIn, peer, "in")
		counter(c.peerMessages, p.MessagesOut, peer, "out")
		if p.RTT > 0 {
			gauge(c.peerRTT, p.RTT.Seconds(), peer)
		}
	}
	for r, v := range s.Stats.Closes {
		counter(c.closes, v, r.String())
	}
	for l, v := range s.Stats.LimitsExceeded {
		counter(c.limits, v, l.String())
	}
	counter(c.certWarnings, s.Stats.CertExpiryWarnings)
	if !s.Stats.CertNotAfter.IsZero() {
		gauge(c.certNotAfter, float64(s.Stats.CertNotAfter.Unix()))
	}
}
