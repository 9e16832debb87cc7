package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/control/manager"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/pmtu"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

func init() { register(newConfigCmd) }

func newConfigCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check configuration files",
	}
	var nsName string
	check := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Report every problem xdpsec run would find in a configuration file (exit 1 on an error)",
		Long: `Check a configuration file as xdpsec run would before it starts, and report every problem at
once, each with its file, line, SA or policy, and field:

  - who can read and change the file (the checks xdpsec run makes: a file with keys that group
    or others can read, a file or a directory above it that they can write, an owner other than
    root or this user);
  - its syntax and every field (all of them, also when a value does not parse);
  - both interfaces named; each present on this machine (--netns: in that namespace) — a missing
    one is a warning, so a file can be checked before it is deployed;
  - the control plane's own start, run dry on a card with the file's capacities: policies beyond
    capacities.policies (xdpsec run refuses to start), SAs the card would refuse (more than
    capacities.sas, an inbound SA no policy serves, an offload list without the interface the
    card uses it on), policies it would refuse;
  - tfc_pad that leaves no packet fitting the wire MTU (the interface's, when present);
  - SAs no policy uses, by name or reqid (a warning).

Exit status 0 when there is no error (warnings allowed), 1 when there is one, 2 on a usage error.
-o json prints {"file", "ok", "errors", "warnings", "problems": [{"line", "section", "name",
"field", "severity", "message"}]}.

Not checked: the state directory (xdpsec run opens, checks and locks it at start) and the keys the
state directory retired.`,
		Example: `  xdpsec config check -c /etc/xdpsec/gw1.yaml
  xdpsec config check -c gw1.yaml --netns gw -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.ConfigPath == "" {
				return usageErrorf("no configuration file: give -c FILE")
			}
			rep, err := checkConfig(cmd.Context(), a.ConfigPath, nsName)
			if err != nil {
				return err
			}
			if err := a.reply(rep, func() { rep.print(a) }); err != nil {
				return err
			}
			if !rep.OK {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	check.Flags().StringVar(&nsName, "netns", "", "look for the interfaces in this network `namespace` (ip netns name)")
	_ = check.RegisterFlagCompletionFunc("netns", completeNetns)
	cmd.AddCommand(check)
	return cmd
}

// checkReport is what `config check` prints (-o json as it is).
type checkReport struct {
	File     string         `json:"file"`
	OK       bool           `json:"ok"`
	Errors   int            `json:"errors"`
	Warnings int            `json:"warnings"`
	Problems []checkProblem `json:"problems"`
}

type checkProblem struct {
	Line     int    `json:"line,omitempty"`
	Section  string `json:"section,omitempty"` // "sa", "policy"; absent for the top level and the file
	Name     string `json:"name,omitempty"`    // the SA's or policy's name, or "#3" for an unnamed third entry
	Field    string `json:"field,omitempty"`
	Severity string `json:"severity"` // "error" or "warning"
	Message  string `json:"message"`

	text string // the line the text output prints
}

func (r *checkReport) print(a *App) {
	for _, p := range r.Problems {
		fmt.Fprintln(a.Out, p.text)
	}
	switch {
	case r.Errors == 0 && r.Warnings == 0:
		fmt.Fprintf(a.Out, "%s: ok\n", r.File)
	case r.Errors == 0:
		fmt.Fprintf(a.Out, "%s: ok, %s\n", r.File, plural(r.Warnings, "warning"))
	default:
		fmt.Fprintf(a.Out, "%s: %s, %s\n", r.File, plural(r.Errors, "error"), plural(r.Warnings, "warning"))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// checkConfig runs every check of `config check` on the file at path. An error means the check
// itself could not run (a namespace that does not exist); problems of the file are in the report.
func checkConfig(ctx context.Context, path, nsName string) (*checkReport, error) {
	ck := config.CheckFile(path)
	if c := ck.Config; c != nil {
		defer c.Wipe()
		host, err := inspectHost(c, nsName)
		if err != nil {
			return nil, err
		}
		host.report(ck, nsName)
		if err := dryRun(ctx, ck, host); err != nil {
			return nil, err
		}
	}
	ck.Sort()
	rep := &checkReport{File: path, Problems: []checkProblem{}}
	for _, f := range ck.Findings {
		p := checkProblem{Line: f.Line, Section: f.Section, Name: f.Name, Field: f.Field, Severity: "error",
			Message: f.Err.Error(), text: f.Error.Error()}
		if n, err := strconv.Unquote(f.Name); err == nil {
			p.Name = n
		}
		if f.Warning {
			p.Severity = "warning"
			rep.Warnings++
			// "gw.yaml:3: warning: interfaces.protected: …"
			loc, rest, _ := strings.Cut(p.text, ": ")
			if f.Line > 0 || f.File != "" {
				p.text = loc + ": warning: " + rest
			}
		} else {
			rep.Errors++
		}
		rep.Problems = append(rep.Problems, p)
	}
	rep.OK = rep.Errors == 0
	return rep, nil
}

// host is what this machine has of the configuration's interfaces.
type host struct {
	protected, wire hostIface
}

type hostIface struct {
	field, name string
	found       bool
	mtu, queues int
	addrs       []netip.Addr
}

// inspectHost looks up the configuration's interfaces, in the network namespace nsName when given,
// as `xdpsec run` does when it starts (control/daemon, inspect).
func inspectHost(c *config.Config, nsName string) (*host, error) {
	h := &host{protected: hostIface{field: "interfaces.protected", name: c.Interfaces.Protected},
		wire: hostIface{field: "interfaces.wire", name: c.Interfaces.Wire}}
	var nl *netlink.Handle
	var err error
	if nsName != "" {
		ns, err := netns.GetFromName(nsName)
		if err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", nsName, err)
		}
		defer ns.Close()
		nl, err = netlink.NewHandleAt(ns)
		if err != nil {
			return nil, fmt.Errorf("open netlink in namespace %s: %w", nsName, err)
		}
	} else if nl, err = netlink.NewHandle(); err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	defer nl.Close()
	for _, hi := range []*hostIface{&h.protected, &h.wire} {
		if hi.name == "" {
			continue
		}
		l, err := nl.LinkByName(hi.name)
		if err != nil {
			continue
		}
		attrs := l.Attrs()
		hi.found, hi.mtu, hi.queues = true, attrs.MTU, attrs.NumRxQueues
		addrs, _ := nl.AddrList(l, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP); ok {
				hi.addrs = append(hi.addrs, ip.Unmap())
			}
		}
	}
	return h, nil
}

// report adds what the machine says about the file: an interface it lacks (a warning: the file
// may be meant for another machine), one without a receive queue (xdpsec run stops at it).
func (h *host) report(ck *config.Checked, nsName string) {
	where := "on this machine"
	if nsName != "" {
		where = "in network namespace " + nsName
	}
	for _, hi := range []*hostIface{&h.protected, &h.wire} {
		switch {
		case hi.name == "":
		case !hi.found:
			ck.Add("", "", hi.field, true, fmt.Errorf("no interface %q %s: xdpsec run would stop at start here "+
				"(what depends on it was not checked: tfc_pad against its MTU, which SAs end at the gateway)", hi.name, where))
		case hi.queues <= 0:
			ck.Add("", "", hi.field, false, fmt.Errorf("interface %q %s: %w", hi.name, where, daemon.ErrNoQueues))
		}
	}
}

// local tells the gateway's own addresses, as the daemon's driver does (an SA towards one is
// inbound).
func (h *host) local(a netip.Addr) bool {
	return slices.Contains(h.wire.addrs, a) || slices.Contains(h.protected.addrs, a)
}

// dryRun starts the control plane (control/manager, the SAD/SPD and the offload engine) on the
// file's valid SAs and policies, over a card that decides as the daemon's driver does
// (daemon.Admit, esp.New) with the file's capacities but holds nothing, and reports what `xdpsec
// run` would refuse at start (apply's errors) and what the card would refuse (nacks). It does not
// run when the capacities or interfaces themselves are wrong: those errors are reported already.
func dryRun(ctx context.Context, ck *config.Checked, h *host) error {
	c := ck.Config
	for _, f := range ck.Findings {
		if !f.Warning && f.Section == "" && strings.HasPrefix(f.Field, "capacities.") {
			return nil
		}
	}
	card := &dryCard{protected: c.Interfaces.Protected, wire: c.Interfaces.Wire, local: h.local,
		caps: offload.Capacity{SAs: c.Capacities.SAs, Policies: c.Capacities.Policies}}
	dropLists := false
	if card.protected == "" || card.wire == "" || card.protected == card.wire {
		// Reported already; names to run the engine with, and no offload list to judge.
		card.protected, card.wire, dropLists = "protected", "wire", true
	}
	if h.wire.found {
		card.mtu, card.mtuFrom = h.wire.mtu, fmt.Sprintf("the MTU %d of %s", h.wire.mtu, h.wire.name)
	} else if !c.Dataplane.MultiBuffer {
		// Whatever the interface: a packet must fit a UMEM frame behind the kernel's headroom.
		card.mtu = int(c.Dataplane.FrameSize) - xsk.PacketHeadroom - 14 - esp.Tailroom
		card.mtuFrom = fmt.Sprintf("the %d bytes of IP a %d-byte frame holds", card.mtu, c.Dataplane.FrameSize)
	}
	skip := map[string]bool{} // entries apply refused: left out of a second run
	for attempt := 0; attempt < 2; attempt++ {
		dry := dryConfig(ck, skip, dropLists, card)
		started, err := runDry(ctx, dry, card, ck, skip)
		if err != nil {
			return err
		}
		if started {
			return nil
		}
	}
	return nil
}

// dryConfig is the part of the file the dry run takes: the valid SAs (with keys of their own, which
// the manager wipes), the valid policies whose SA is among them, no metrics endpoint.
func dryConfig(ck *config.Checked, skip map[string]bool, dropLists bool, card *dryCard) *config.Config {
	c := ck.Config
	dry := *c
	dry.Interfaces = config.Interfaces{Protected: card.protected, Wire: card.wire}
	dry.Daemon.Metrics = ""
	dry.SAs, dry.Policies = nil, nil
	have := map[string]bool{}
	for i := range c.SAs {
		if ck.ValidSA(i) && !skip["sa "+c.SAs[i].Name] {
			s := c.SAs[i].Clone()
			if dropLists {
				s.Offload = nil
			}
			dry.SAs = append(dry.SAs, s)
			have[s.Name] = true
		}
	}
	for i := range c.Policies {
		p := c.Policies[i]
		if !ck.ValidPolicy(i) || skip["policy "+p.Name] || (p.SA != "" && !have[p.SA]) {
			continue
		}
		if dropLists {
			p.Offload = nil
		}
		dry.Policies = append(dry.Policies, p)
	}
	return &dry
}

// applyErrRE splits one of manager.apply's errors into the entry and the problem.
var applyErrRE = regexp.MustCompile(`^(sa|policy) "([^"]*)": (.*)$`)

// runDry runs the control plane once on dry. When its start fails it reports why, per entry, adds
// the entries to skip, and returns started false.
func runDry(ctx context.Context, dry *config.Config, card *dryCard, ck *config.Checked, skip map[string]bool) (bool, error) {
	m, err := manager.New(dry, card, manager.Options{NoAPI: true, NoPoller: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		dry.Wipe()
		return false, fmt.Errorf("dry run: %w", err)
	}
	if err := m.Start(ctx); err != nil {
		// apply went through every entry; the store holds copies of the keys of those it took.
		m.Store().WipeKeys()
		dry.Wipe()
		var errs []error
		if j, ok := errors.Unwrap(err).(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		for _, e := range errs {
			msg := "xdpsec run would refuse to start: "
			if mm := applyErrRE.FindStringSubmatch(e.Error()); mm != nil {
				skip[mm[1]+" "+mm[2]] = true
				ck.Add(mm[1], mm[2], "", false, errors.New(msg+mm[3]+capacityHint(mm[3], dry)))
			} else {
				ck.Add("", "", "", false, errors.New(msg+e.Error()))
			}
		}
		return false, nil
	}
	defer m.Close() // wipes dry's keys and the SAD's
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.Sync(sctx); err != nil {
		return true, fmt.Errorf("dry run: %w", err)
	}
	for _, v := range m.ListSAs(false) {
		if msg := refusals(v.OffloadState); msg != "" {
			if v.Index >= card.caps.SAs && card.caps.SAs > 0 {
				msg += fmt.Sprintf(" (capacities.sas %d holds %d SAs)", card.caps.SAs, card.caps.SAs-1)
			}
			ck.Add("sa", v.Name, "", false, errors.New("the card would refuse it: "+msg))
		}
	}
	for _, v := range m.ListPolicies() {
		if msg := refusals(v.OffloadState); msg != "" {
			ck.Add("policy", v.Name, "", false, errors.New("the card would refuse it: "+msg))
		}
	}
	for _, name := range card.noFit {
		s := dry.SA(name)
		ck.Add("sa", name, "tfc_pad", false, fmt.Errorf("%d: no packet fits: padded to it, an ESP packet of this SA "+
			"has at least %d bytes, more than %s", s.TFCPad, card.minPacket[name], card.mtuFrom))
	}
	return true, nil
}

// capacityHint adds, to the SPD's refusal, the setting it comes from.
func capacityHint(msg string, c *config.Config) string {
	if strings.Contains(msg, "the SPD holds its maximum") {
		return fmt.Sprintf(" (capacities.policies %d holds %d policies: raise it)", c.Capacities.Policies, c.Capacities.Policies-1)
	}
	return ""
}

// refusals describes the refused offload states, once per reason: "refused on gw1-lan, gw1-wan:
// not_in_offload_list: …".
func refusals(states []offload.IfaceState) string {
	type why struct {
		reason offload.Reason
		detail string
	}
	var order []why
	on := map[why][]string{}
	for _, s := range states {
		if s.Status != offload.StatusRefused {
			continue
		}
		w := why{s.Reason, s.Detail}
		if on[w] == nil {
			order = append(order, w)
		}
		on[w] = append(on[w], s.Iface)
	}
	var parts []string
	for _, w := range order {
		p := fmt.Sprintf("on %s: %s", strings.Join(on[w], ", "), w.reason)
		if w.detail != "" {
			p += ": " + w.detail
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// dryCard is the card of the dry run: it decides about each SA as the daemon's driver does before
// it touches anything (daemon.Admit: the direction, the engine's parameters, an inbound SA no
// policy serves; esp.New: what the engine accepts), reports the file's capacities as the daemon's
// driver reports the card's, shares its tables between both interfaces as the card does, and holds
// nothing. It notes outbound SAs whose tfc_pad leaves no packet that fits mtu.
type dryCard struct {
	protected, wire string
	caps            offload.Capacity
	local           func(netip.Addr) bool
	mtu             int    // the wire MTU, or what a frame holds; 0: unknown
	mtuFrom         string // where mtu comes from, for the message
	noFit           []string
	minPacket       map[string]int
}

var (
	_ offload.Driver           = (*dryCard)(nil)
	_ offload.SharedTables     = (*dryCard)(nil)
	_ offload.CapacityReporter = (*dryCard)(nil)
)

func (d *dryCard) Interfaces() []string                       { return []string{d.protected, d.wire} }
func (d *dryCard) Sides() (protected, wire string)            { return d.protected, d.wire }
func (d *dryCard) Capacity() offload.Capacity                 { return d.caps }
func (d *dryCard) RemoveSA(uint32, string) error              { return nil }
func (d *dryCard) InstallPolicy(*offload.PolicyOffload) error { return nil }
func (d *dryCard) RemovePolicy(uint32, string) error          { return nil }
func (d *dryCard) Counters() (map[uint32]offload.SACounters, error) {
	return map[uint32]offload.SACounters{}, nil
}
func (d *dryCard) GlobalCounters() (map[string]uint64, error) { return map[string]uint64{}, nil }
func (d *dryCard) Dump() (offload.CardState, error)           { return offload.CardState{}, nil }

func (d *dryCard) InstallSA(o *offload.SAOffload) error {
	dir, params, err := daemon.Admit(o, d.local)
	if err != nil {
		return err
	}
	sa, err := esp.New(params)
	if err != nil {
		return offload.Nack(offload.ReasonUnsupported, "%v", err)
	}
	defer sa.Wipe()
	// The worker's inner MTU (crypto/worker: pmtu.MaxInner over the SA's overhead) is 0 when even
	// an empty packet, padded, is too big.
	if dir == ipsec.DirOut && d.mtu > 0 && params.TFCPadTo > 0 && pmtu.MaxInner(d.mtu, sa.Overhead) == 0 &&
		!slices.Contains(d.noFit, o.SA.Name) {
		if d.minPacket == nil {
			d.minPacket = map[string]int{}
		}
		d.noFit = append(d.noFit, o.SA.Name)
		d.minPacket[o.SA.Name] = sa.Overhead(0)
	}
	return nil
}
