package membership

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// memberlist logs through a *log.Logger with "[LEVEL] memberlist: ..."
// lines and has no hook, callback or typed error for the failures an
// operator most needs to hear about: a peer whose gossip we cannot
// decrypt (cluster key mismatch) and a peer that is not a shoal cluster
// (gossip label mismatch). Its Join errors are fmt.Errorf("%v") strings
// too. So the only way to see these is to read its text, which is what
// classifyGossipText does, in one place, against the messages of the
// memberlist version in go.mod (v0.7.0; see TestClassifyGossipText when
// upgrading). Everything else it logs becomes a debug record.

// gossipProblem is what a memberlist log line or error text says about a
// peer.
type gossipProblem uint8

const (
	problemNone        gossipProblem = iota
	problemKeyMismatch               // cannot decrypt, or one side encrypts and the other does not
	problemNotShoal                  // other gossip label, other protocol, or cannot tell
	problemUDPBlocked                // TCP reaches the member, UDP does not
)

// reason is the text the warning and Join's error give for p.
func (p gossipProblem) reason() string {
	switch p {
	case problemKeyMismatch:
		return ErrKeyMismatch.Error()
	case problemNotShoal:
		return "not a shoal cluster (gossip label differs)"
	case problemUDPBlocked:
		return "gossip over UDP fails (TCP works)"
	}
	return ""
}

// hint tells the operator what to check.
func (p gossipProblem) hint() string {
	switch p {
	case problemKeyMismatch:
		return "the peer uses another cluster key, or none: every member needs the same key file"
	case problemNotShoal:
		return "the peer speaks gossip without shoal's label or another protocol: check the --join addresses and ports"
	case problemUDPBlocked:
		return "a firewall drops UDP on the gossip port: open it for both TCP and UDP"
	}
	return ""
}

// classifyGossipText says which problem a line of memberlist's log output
// (without its "[LEVEL] memberlist: " prefix) or the text of an error
// returned by memberlist.Join is about. This is the only place that
// matches memberlist's wording.
func classifyGossipText(s string) gossipProblem {
	switch {
	case strings.Contains(s, "no installed keys could decrypt the message"), // wrong key (streams and packets)
		strings.Contains(s, "Decrypt packet failed"),                                      // any undecryptable packet
		strings.Contains(s, "encryption is configured but remote state is not encrypted"), // peer has no key
		strings.Contains(s, "remote state is encrypted and encryption is not configured"): // we have no key
		return problemKeyMismatch
	case strings.Contains(s, "discarding stream with unacceptable label \"\""):
		// An unlabelled stream, but also an empty one: a member that
		// dialled and gave up before writing (a TCP fallback probe past
		// its deadline on a loaded machine) is logged the same way, so
		// this says nothing about the peer.
		return problemNone
	case strings.Contains(s, "with unacceptable label"), // "discarding stream/packet with unacceptable label"
		strings.Contains(s, "failed to receive and remove the stream label header"),
		strings.Contains(strings.ToLower(s), "invalid msgtype"): // a peer that does not speak memberlist
		return problemNotShoal
	case strings.Contains(s, "over TCP but UDP probes failed"):
		return problemUDPBlocked
	case strings.Contains(s, "failed to join ") &&
		(strings.HasSuffix(s, ": EOF") || strings.Contains(s, "connection reset by peer")):
		// The remote closed the stream without an answer: what a
		// memberlist with another label does (it cannot even send an
		// error we could read).
		return problemNotShoal
	}
	return problemNone
}

// remoteOf returns the peer a memberlist log line names: the address of
// its "from=ADDR" suffix, or for the UDP warning the member's name.
func remoteOf(s string, p gossipProblem) string {
	if p == problemUDPBlocked {
		const before, after = "connect to ", " over TCP"
		i := strings.Index(s, before)
		j := strings.Index(s, after)
		if i < 0 || j < i+len(before) {
			return ""
		}
		return s[i+len(before) : j]
	}
	i := strings.LastIndex(s, "from=")
	if i < 0 {
		return ""
	}
	a := s[i+len("from="):]
	if j := strings.IndexAny(a, " \t"); j >= 0 {
		a = a[:j]
	}
	if strings.HasPrefix(a, "<") { // "from=<unknown address>"
		return ""
	}
	return a
}

// splitLevel splits "[ERR] memberlist: text" into "ERR" and "text".
func splitLevel(line string) (level, msg string) {
	msg = line
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimPrefix(msg[i+1:], " ")
		}
	}
	return level, strings.TrimPrefix(msg, "memberlist: ")
}

const (
	// warnEvery is how often the same problem with the same peer host is
	// warned about again; in between it is a debug record.
	warnEvery = 10 * time.Minute
	// maxWarned bounds the memory of warned peers (UDP sources can be
	// forged); when full, new peers are only logged at debug level.
	maxWarned = 1024
)

// logBridge is the io.Writer behind memberlist's *log.Logger. It turns
// each line into a debug record of log, and the lines classifyGossipText
// recognises into one warning per problem and peer host (per warnEvery),
// however many packets or connections the peer sends.
type logBridge struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex           // protects warned, refusals
	warned   map[string]time.Time // problem and peer host → when last warned
	refusals map[string]*Refusal  // problem and peer host → every time seen
}

func newLogBridge(log *slog.Logger) *logBridge {
	return &logBridge{log: log, now: time.Now, warned: make(map[string]time.Time), refusals: make(map[string]*Refusal)}
}

// Refusal is a peer whose gossip was refused (or that has a problem
// with ours), by remote host and reason: how many times, first and last.
type Refusal struct {
	Remote      string // the peer's host, or for a UDP problem the member's name
	Reason      string // "cluster key mismatch", "not a shoal cluster (gossip label differs)", ...
	Count       int64
	First, Last time.Time
}

// record counts prob with host; the table holds at most maxWarned peers
// (UDP sources can be forged), then new ones are not recorded.
func (b *logBridge) record(prob gossipProblem, host string) {
	key := prob.reason() + "|" + host
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.refusals[key]; ok {
		r.Count++
		r.Last = now
		return
	}
	if len(b.refusals) < maxWarned {
		b.refusals[key] = &Refusal{Remote: host, Reason: prob.reason(), Count: 1, First: now, Last: now}
	}
}

// list returns the recorded refusals, oldest first.
func (b *logBridge) list() []Refusal {
	b.mu.Lock()
	out := make([]Refusal, 0, len(b.refusals))
	for _, r := range b.refusals {
		out = append(out, *r)
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(a, b Refusal) int { return a.First.Compare(b.First) })
	return out
}

// Write is called by log.Logger once per record; it never fails.
func (b *logBridge) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			b.line(line)
		}
	}
	return len(p), nil
}

func (b *logBridge) line(line string) {
	level, msg := splitLevel(line)
	b.log.Debug(msg, slog.String("component", "memberlist"), slog.String("memberlist_level", level))
	prob := classifyGossipText(msg)
	if prob == problemNone {
		return
	}
	remote := remoteOf(msg, prob)
	if remote == "" {
		return // e.g. our own failed Join: Join returns the error instead
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h // stream connections come from ephemeral ports: one warning per host
	}
	b.record(prob, host)
	if !b.firstIn(prob, host) {
		return
	}
	attrs := []slog.Attr{slog.String("reason", prob.reason()), slog.String("hint", prob.hint())}
	if prob == problemUDPBlocked {
		attrs = append(attrs, slog.String("member", remote))
		b.log.LogAttrs(context.Background(), slog.LevelWarn, "gossip problem with member", attrs...)
		return
	}
	attrs = append(attrs, slog.String("remote", remote))
	b.log.LogAttrs(context.Background(), slog.LevelWarn, "refused gossip from peer", attrs...)
}

// firstIn reports whether prob with host was not warned about within
// warnEvery, and records it.
func (b *logBridge) firstIn(prob gossipProblem, host string) bool {
	key := prob.reason() + "|" + host
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if last, ok := b.warned[key]; ok && now.Sub(last) < warnEvery {
		return false
	}
	if len(b.warned) >= maxWarned {
		for k, t := range b.warned {
			if now.Sub(t) >= warnEvery {
				delete(b.warned, k)
			}
		}
		if len(b.warned) >= maxWarned {
			return false
		}
	}
	b.warned[key] = now
	return true
}
