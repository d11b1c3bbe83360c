package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Membership is this process's place in the cluster: it gossips our
// Member, learns the others and reports their changes. Its methods are
// safe for concurrent use.
type Membership struct {
	cfg    Config // a copy, read-only after New
	log    *slog.Logger
	bridge *logBridge // memberlist's log output; records refused peers
	ml     *memberlist.Memberlist
	wake   chan struct{} // one pending wake-up of dispatchEvents
	stop   chan struct{} // closed by shutdown

	mu           sync.Mutex             // protects the fields below; never held while calling memberlist or OnEvent
	members      map[string]memberEntry // live members by name, ourselves included
	gone         map[string]goneEntry   // members ReportRefused removed and memberlist has not declared dead
	selfMeta     []byte                 // our encoded memberMeta, what NodeMeta returns
	queue        []Event                // events not yet given to OnEvent
	eventsClosed bool                   // set by shutdown: queue no more events
	warnedPeers  map[string]struct{}    // peers already warned about (bad meta, duplicate name)
	joinRefusal  error                  // set by NotifyMerge when it refuses a merge, read by join

	stateMu sync.Mutex // serialises changes of our meta with their UpdateNode broadcast
	joinMu  sync.Mutex // serialises joins, so joinRefusal belongs to the join in progress

	lifeMu sync.Mutex     // serialises Leave and Close
	wgMu   sync.Mutex     // orders wg.Go after a closed check against shutdown setting closed
	closed atomic.Bool    // set once by shutdown (Close or Leave)
	wg     sync.WaitGroup // dispatchEvents and join goroutines
}

// memberEntry is a live member and whether it announced its Leave.
type memberEntry struct {
	Member
	departing bool
}

// New starts gossiping on cfg's address, with ourselves a lone member in
// StateJoining; Join then contacts the cluster. It returns an error
// wrapping ErrInvalidConfig for a config it refuses, or the reason the
// gossip listener could not start.
func New(cfg *Config) (*Membership, error) {
	if cfg == nil {
		return nil, fmt.Errorf("membership: %w: nil Config (start from DefaultLANConfig)", ErrInvalidConfig)
	}
	c := *cfg
	c.Key = slices.Clone(cfg.Key)
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	meta, err := encodeMeta(memberMeta{Role: c.Role, State: StateJoining, HTTPAddr: c.HTTPAddr, ReplAddr: c.ReplAddr})
	if err != nil {
		return nil, fmt.Errorf("membership: %w: %w", ErrInvalidConfig, err)
	}
	m := &Membership{
		cfg:      c,
		log:      log,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		selfMeta: meta,
		members: map[string]memberEntry{c.Name: {Member: Member{
			Name: c.Name, Role: c.Role, State: StateJoining, HTTPAddr: c.HTTPAddr, ReplAddr: c.ReplAddr,
		}}},
		warnedPeers: make(map[string]struct{}),
	}
	m.bridge = newLogBridge(log)
	mc := c.memberlistConfig(&hooks{m: m}, m.bridge)
	tr, err := newTransport(c.BindAddr, c.BindPort, mc.Logger)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	mc.Transport = tr
	mc.BindPort = tr.port() // memberlist does this itself only for its own transport
	if c.AdvertisePort == 0 {
		mc.AdvertisePort = tr.port()
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		return nil, fmt.Errorf("membership: start gossip on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	m.ml = ml
	if c.OnEvent != nil {
		m.wg.Go(m.dispatchEvents)
	}
	self := m.Self()
	log.Info("membership started", slog.String("name", self.Name), slog.String("role", self.Role.String()),
		slog.String("gossip", self.Gossip), slog.Bool("encrypted", !c.Insecure))
	return m, nil
}

// Join contacts the members at addrs (host:port of their gossip
// listeners, as a static --join list gives them) and merges their view of
// the cluster with ours. It returns how many addresses it joined through.
// Addresses equal to our own gossip address are skipped, so every member
// can be given the same list; a list of only ourselves returns 0, nil.
//
// Join succeeds if at least one address answered; the others are logged.
// If none did, the error says why for each address, wrapping
// ErrKeyMismatch, ErrNotShoalCluster or ErrDuplicateName where that is
// the reason. If ctx ends first, Join returns ctx's error; the attempt in
// progress finishes in the background (within Config.TCPTimeout per
// address) and Close waits for it.
func (m *Membership) Join(ctx context.Context, addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, errors.New("membership: join: no addresses given")
	}
	self := m.Self().Gossip
	var targets []string
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return 0, fmt.Errorf("membership: join: address %q: want host:port of a member's gossip listener", a)
		}
		if sameHostPort(a, self) {
			continue
		}
		targets = append(targets, a)
	}
	if len(targets) == 0 {
		return 0, nil
	}
	if err := context.Cause(ctx); err != nil {
		return 0, fmt.Errorf("membership: join: %w", err)
	}
	res := make(chan joinResult, 1)
	m.wgMu.Lock()
	if m.closed.Load() {
		m.wgMu.Unlock()
		return 0, fmt.Errorf("membership: join: %w", ErrClosed)
	}
	m.wg.Go(func() { res <- m.join(targets) })
	m.wgMu.Unlock()
	select {
	case r := <-res:
		return r.n, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("membership: join: %w", context.Cause(ctx))
	}
}

type joinResult struct {
	n   int
	err error
}

// join contacts each target in turn; see Join.
func (m *Membership) join(targets []string) joinResult {
	m.joinMu.Lock()
	defer m.joinMu.Unlock()
	var n int
	var errs []error
	for _, addr := range targets {
		select {
		case <-m.stop:
			errs = append(errs, fmt.Errorf("join %s: %w", addr, ErrClosed))
			continue
		default:
		}
		m.setJoinRefusal(nil)
		if _, err := m.ml.Join([]string{addr}); err != nil {
			errs = append(errs, m.joinError(addr, err))
			continue
		}
		n++
	}
	if n == 0 {
		return joinResult{0, fmt.Errorf("membership: %w", errors.Join(errs...))}
	}
	for _, err := range errs {
		m.log.Warn("could not join through an address", slog.Any("err", err))
	}
	m.log.Info("joined cluster", slog.Int("through", n), slog.Int("members", len(m.Members())))
	return joinResult{n, nil}
}

// joinError turns memberlist's error for one address into ours.
func (m *Membership) joinError(addr string, err error) error {
	if r := m.setJoinRefusal(nil); r != nil {
		return fmt.Errorf("join %s: %w", addr, r)
	}
	text := flattenError(err)
	detail := text
	if rest, ok := strings.CutPrefix(text, "failed to join "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			detail = after
		}
	}
	switch classifyGossipText(text) {
	case problemKeyMismatch:
		return fmt.Errorf("join %s: %w (memberlist: %s)", addr, ErrKeyMismatch, detail)
	case problemNotShoal:
		return fmt.Errorf("join %s: %w (memberlist: %s)", addr, ErrNotShoalCluster, detail)
	}
	return fmt.Errorf("join %s: %s", addr, detail)
}

// flattenError returns the text of err on one line: memberlist returns a
// multierror whose text spans lines.
func flattenError(err error) string {
	if me, ok := err.(interface{ WrappedErrors() []error }); ok {
		var parts []string
		for _, e := range me.WrappedErrors() {
			parts = append(parts, e.Error())
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// setJoinRefusal sets joinRefusal to err and returns its previous value.
func (m *Membership) setJoinRefusal(err error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.joinRefusal
	m.joinRefusal = err
	return prev
}

// sameHostPort reports whether a and b are the same IP literal and port.
func sameHostPort(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp {
		return false
	}
	aip, bip := net.ParseIP(ah), net.ParseIP(bh)
	if aip == nil || bip == nil {
		return ah == bh
	}
	return aip.Equal(bip)
}

// Members returns the live members, ourselves included, sorted by Name.
// A member stays in the list while it is suspected, until it is declared
// dead or has left.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		out = append(out, e.Member)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GossipAddrs returns the gossip addresses of the live members, ourselves
// included: the addresses a discovery loop need not join again.
func (m *Membership) GossipAddrs() []string {
	var out []string
	for _, mem := range m.Members() {
		out = append(out, mem.Gossip)
	}
	return out
}

// Refusals returns the peers whose gossip was refused since New (a
// cluster key mismatch, another gossip label) or that cannot be reached
// over UDP, by host and reason, oldest first. Each is logged once per
// ten minutes but counted every time.
func (m *Membership) Refusals() []Refusal { return m.bridge.list() }

// Self returns our own Member as we gossip it.
func (m *Membership) Self() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members[m.cfg.Name].Member
}

// SetState changes our State and queues it for gossip; it does not wait
// for the others to see it (on a LAN they do within a few GossipIntervals;
// push/pull syncs repair any loss). It returns ErrClosed after Close or
// Leave.
func (m *Membership) SetState(s State) error {
	if !s.valid() {
		return fmt.Errorf("membership: set state: unknown state %d", uint8(s))
	}
	if m.closed.Load() {
		return fmt.Errorf("membership: set state %s: %w", s, ErrClosed)
	}
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if changed := m.updateSelf(func(mm *memberMeta) { mm.State = s }); !changed {
		return nil
	}
	// UpdateNode queues the new meta, then blocks until memberlist has
	// sent it RetransmitMult·log10(N+1) times or the timeout passes; its
	// only error is that timeout. Waiting would make SetState from
	// OnEvent hold up Close (the wait does not end at Shutdown), so give
	// it the shortest timeout: the broadcast goes out all the same.
	_ = m.ml.UpdateNode(time.Nanosecond)
	return nil
}

// updateSelf applies change to our meta and reports whether it changed.
func (m *Membership) updateSelf(change func(*memberMeta)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.members[m.cfg.Name]
	mm := memberMeta{Role: e.Role, State: e.State, Departing: e.departing, HTTPAddr: e.HTTPAddr, ReplAddr: e.ReplAddr}
	before := mm
	change(&mm)
	if mm == before {
		return false
	}
	b, err := encodeMeta(mm)
	if err != nil {
		// Cannot happen: New checked the addresses and change sets only
		// valid states and flags.
		m.log.Error("membership: cannot encode our own metadata", slog.Any("err", err))
		return false
	}
	m.selfMeta = b
	e.State, e.departing = mm.State, mm.Departing
	m.members[m.cfg.Name] = e
	return true
}

// Leave leaves the cluster cleanly, then stops like Close: the others see
// EventLeave for us, not EventDead. It announces the leave, waits up to
// timeout (which must be positive) for memberlist to send it out, and
// returns an error wrapping ErrBroadcastTimeout if it could not confirm
// that; gossip stops either way. After Leave, Close returns nil.
func (m *Membership) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("membership: leave: timeout %v must be positive", timeout)
	}
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("membership: leave: %w", ErrClosed)
	}
	deadline := time.Now().Add(timeout)
	remaining := func() time.Duration { return max(time.Until(deadline), time.Millisecond) }

	// memberlist does not tell its event delegate whether a member left
	// or failed (hashicorp/memberlist#266), so a leaving member first
	// gossips a departing flag in its meta; the others report its
	// disappearance as EventLeave if they saw the flag.
	m.stateMu.Lock()
	var errs []error
	if m.updateSelf(func(mm *memberMeta) { mm.Departing = true }) {
		if err := m.ml.UpdateNode(remaining()); err != nil {
			errs = append(errs, fmt.Errorf("%w: departing flag", ErrBroadcastTimeout))
		}
	}
	m.stateMu.Unlock()
	if err := m.ml.Leave(remaining()); err != nil {
		errs = append(errs, fmt.Errorf("%w: leave message", ErrBroadcastTimeout))
	}
	if err := m.shutdownLocked(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("membership: leave (within %v): %w", timeout, errors.Join(errs...))
	}
	m.log.Info("left cluster", slog.String("name", m.cfg.Name))
	return nil
}

// Close stops gossiping and waits for the Membership's goroutines. If
// Leave was not called, the others declare us dead after their failure
// detection time, as if the process had been killed. Close is idempotent.
func (m *Membership) Close() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	return m.shutdownLocked()
}

// shutdownLocked stops memberlist and our goroutines; m.lifeMu is held.
func (m *Membership) shutdownLocked() error {
	if m.closed.Load() {
		return nil
	}
	m.wgMu.Lock()
	m.closed.Store(true)
	m.wgMu.Unlock()
	err := m.ml.Shutdown()
	m.mu.Lock()
	m.eventsClosed = true
	m.queue = nil
	m.mu.Unlock()
	close(m.stop)
	m.wg.Wait()
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

// enqueueLocked queues ev for OnEvent; m.mu is held.
func (m *Membership) enqueueLocked(ev Event) {
	if m.cfg.OnEvent == nil || m.eventsClosed {
		return
	}
	m.queue = append(m.queue, ev)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// dispatchEvents gives queued events to OnEvent, one at a time, until
// shutdown. memberlist calls our event hooks with its own locks held, so
// the hooks only queue and this goroutine calls OnEvent with no lock held.
func (m *Membership) dispatchEvents() {
	for {
		select {
		case <-m.stop:
			return
		case <-m.wake:
		}
		for {
			m.mu.Lock()
			if m.eventsClosed || len(m.queue) == 0 {
				m.mu.Unlock()
				break
			}
			ev := m.queue[0]
			m.queue[0] = Event{}
			m.queue = m.queue[1:]
			m.mu.Unlock()
			m.cfg.OnEvent(ev)
		}
	}
}
