package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/xfrmargs"
)

func init() { register(newSACmd) }

func newSACmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sa",
		Short: "Manage the daemon's Security Associations (like ip xfrm state)",
		Long: `Add, update, delete, show and flush the SAs of a running daemon (xdpsec run), through its API
socket. The arguments follow ip xfrm state; see docs/control.md.`,
	}
	var showKeys, stats bool
	var owner string
	var keyFile string
	add := &cobra.Command{
		Use:   "add src ADDR dst ADDR proto esp spi SPI [reqid N] [mode tunnel|transport] ALGO... [options]",
		Short: "Add an SA (ip xfrm state add grammar)",
		Long: `Add an SA to the running daemon. The arguments are ip xfrm state add's (docs/control.md):

  src ADDR dst ADDR proto esp spi SPI [reqid N] [mode tunnel|transport]
  { aead NAME KEY ICV-BITS | enc NAME KEY auth-trunc NAME KEY TRUNC-BITS | enc NAME KEY auth NAME KEY }
  [replay-window N] [replay-seq N] [replay-oseq N] [flag esn] [flag af-unspec]
  [encap espinudp SPORT DPORT 0.0.0.0] [dir in|out]
  [limit {byte-soft|byte-hard|packet-soft|packet-hard|time-soft|time-hard|time-use-soft|time-use-hard} N]...
  [sel src 0.0.0.0/0 dst 0.0.0.0/0] [name NAME] [offload dev IFACE]... [ttl N] [df copy|set|clear] [tfc-pad N]

NAME is an algorithm: rfc4106(gcm(aes)) (AES-GCM, ICV 128 or 96 bits), rfc7539esp(chacha20,poly1305),
rfc4543(gcm(aes)) (AES-GMAC), cbc(aes) or ecb(cipher_null) with hmac(sha256) (truncated to 128 bits).
flag af-unspec is accepted and changes nothing: a tunnel-mode SA carries IPv4 and IPv6 inside.
Marks (mark, output-mark, set-mark), interface IDs (if_id) and security contexts (ctx) are refused:
the card selects by addresses, protocol and ports only. Without dir, the direction follows from the
policies the SA serves.

Keys: KEY is 0x followed by hex digits, or a string in double quotes whose bytes are the key (ip
xfrm's quoted ASCII keys: '"mykey"' in a shell). A KEY written on the command line is visible to every user of this machine while the command
runs (ps, /proc/PID/cmdline) and stays in the shell's history. Write each KEY as - instead and give
the keys in a file, --key-file FILE (mode 0600: a file group or others can read is refused), or on
standard input, --key-file - : one key per line (0x followed by hex digits), in the order the
arguments name the algorithms (aead; or enc, then auth/auth-trunc). Empty lines and lines starting
with # are skipped.`,
		Example: `  xdpsec sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 reqid 1 mode tunnel \
      aead 'rfc4106(gcm(aes))' - 128 replay-window 128 limit time-hard 3600 name gw1-to-gw2 \
      --key-file /etc/xdpsec/keys/gw1-to-gw2
  pass show ipsec/gw1-to-gw2 | xdpsec sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 \
      mode tunnel enc 'cbc(aes)' - auth-trunc 'hmac(sha256)' - 128 --key-file -
  xdpsec sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 reqid 1 mode tunnel \
      aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128   # key visible in ps`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.saChange(cmd.Context(), "sa add", args, keyFile, false)
		},
	}
	update := &cobra.Command{
		Use:   "update src ADDR dst ADDR proto esp spi SPI ... (same arguments as add)",
		Short: "Update an SA's lifetime, offload list or encapsulation ports (ip xfrm state update)",
		Long: `Update an SA of the running daemon (ip xfrm state update): the arguments name the SA as add
does, keys included, which must be the SA's own; --key-file works as for add.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.saChange(cmd.Context(), "sa update", args, keyFile, true)
		},
	}
	for _, c := range []*cobra.Command{add, update} {
		c.Flags().StringVar(&keyFile, "key-file", "", "read the KEYs written - from `FILE` (- for standard input), one per line")
	}
	del := &cobra.Command{
		Use:               "del NAME | name NAME | [src ADDR] dst ADDR proto esp spi SPI",
		Aliases:           []string{"delete"},
		Short:             "Delete an SA; its offload ends before its key is overwritten",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeRef(a.daemonSANames),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := xfrmargs.ParseSARef("sa del", args)
			if err != nil {
				return &usageError{err: err}
			}
			v, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) (api.SAView, error) {
				return c.DeleteSA(ctx, ref)
			})
			if err != nil {
				return err
			}
			return a.reply(v, nil)
		},
	}
	get := &cobra.Command{
		Use:               "get NAME | name NAME | [src ADDR] dst ADDR proto esp spi SPI",
		Short:             "Show one SA",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeRef(a.daemonSANames),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := xfrmargs.ParseSARef("sa get", args)
			if err != nil {
				return &usageError{err: err}
			}
			v, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) (api.SAView, error) {
				return c.GetSA(ctx, ref, showKeys)
			})
			if err != nil {
				return err
			}
			return a.reply(v, func() { printSA(a.Out, &v, true, showKeys) })
		},
	}
	get.Flags().BoolVar(&showKeys, "show-keys", false, "print key material")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"show", "ls"},
		Short:   "List the SAs (-s: with statistics, like ip -s xfrm state)",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ownerFlag(owner)
			if err != nil {
				return err
			}
			l, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) ([]api.SAView, error) {
				return c.ListSAsOf(ctx, f, showKeys)
			})
			if err != nil {
				return err
			}
			return replyList(a, l, func(v *api.SAView) { printSA(a.Out, v, stats, showKeys) })
		},
	}
	list.Flags().BoolVarP(&stats, "stats", "s", false, "show lifetimes, counters and offload state")
	list.Flags().BoolVar(&showKeys, "show-keys", false, "print key material")
	addOwnerFlag(list, &owner)
	flush := newFlushCmd(a, "SA", "SAs", (*api.Client).FlushSAsOf)
	cmd.AddCommand(add, update, del, get, list, flush)
	return cmd
}

func (a *App) saChange(ctx context.Context, what string, args []string, keyFile string, update bool) error {
	var keys [][]byte
	if keyFile != "" {
		text, err := a.readKeyFile(keyFile)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		defer clear(text)
		keys = keyLines(text)
	}
	sa, err := xfrmargs.ParseSAKeys(what, args, keys)
	if err != nil {
		return &usageError{err: err}
	}
	v, err := callDaemon(ctx, a, func(c *api.Client, ctx context.Context) (api.SAView, error) {
		if update {
			return c.UpdateSA(ctx, sa)
		}
		return c.AddSA(ctx, sa)
	})
	sa.Wipe()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return a.reply(v, nil)
}

func keyText(al *sadb.Algorithm, show bool) string {
	if show && al.Key != nil {
		k, _ := al.Key.MarshalText()
		return string(k)
	}
	return "[key hidden]"
}

// printSA prints an SA the way ip xfrm state does, plus xdpsec's own lines (name, index, offload).
func printSA(w io.Writer, v *api.SAView, stats, showKeys bool) {
	fmt.Fprintf(w, "src %s dst %s\n", v.Src, v.Dst)
	fmt.Fprintf(w, "\tproto esp spi 0x%08x reqid %d mode %s\n", v.SPI, v.Reqid, v.Mode)
	flags := ""
	if v.ESN {
		flags = " flag esn"
	}
	fmt.Fprintf(w, "\treplay-window %d%s\n", v.ReplayWindow, flags)
	if al := v.AEAD; al != nil {
		fmt.Fprintf(w, "\taead %s %s %d\n", al.Name, keyText(al, showKeys), al.Bits)
	}
	if al := v.Enc; al != nil {
		fmt.Fprintf(w, "\tenc %s %s\n", al.Name, keyText(al, showKeys))
	}
	if al := v.Auth; al != nil {
		fmt.Fprintf(w, "\tauth-trunc %s %s %d\n", al.Name, keyText(al, showKeys), al.Bits)
	}
	if e := v.Encap; e != nil {
		fmt.Fprintf(w, "\tencap type %s sport %d dport %d addr 0.0.0.0\n", e.Type, e.Sport, e.Dport)
	}
	if v.Dir != nil {
		fmt.Fprintf(w, "\tdir %s\n", *v.Dir)
	}
	name := v.Name
	if name == "" {
		name = "-"
	}
	fmt.Fprintf(w, "\tname %s owner %s index %d state %s", name, v.Owner, v.Index, v.State)
	if v.Dir == nil && v.Direction != nil {
		fmt.Fprintf(w, " direction %s", *v.Direction) // what the card uses it for; no dir of its own
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\toffload %s\n", offloadText(v.OffloadState, v.Offload))
	if !stats {
		return
	}
	l := v.Limits
	fmt.Fprintf(w, "\tlifetime config:\n")
	fmt.Fprintf(w, "\t  limit: soft %s(bytes), hard %s(bytes)\n", limitText(l.SoftBytes), limitText(l.HardBytes))
	fmt.Fprintf(w, "\t  limit: soft %s(packets), hard %s(packets)\n", limitText(l.SoftPackets), limitText(l.HardPackets))
	fmt.Fprintf(w, "\t  expire add: soft %d(sec), hard %d(sec)\n", l.SoftAddSeconds, l.HardAddSeconds)
	fmt.Fprintf(w, "\t  expire use: soft %d(sec), hard %d(sec)\n", l.SoftUseSeconds, l.HardUseSeconds)
	fmt.Fprintf(w, "\tlifetime current:\n")
	fmt.Fprintf(w, "\t  %d(bytes), %d(packets)\n", v.Cur.Bytes, v.Cur.Packets)
	use := "-"
	if !v.UseTime.IsZero() {
		use = v.UseTime.Format(time.DateTime)
	}
	last := "-"
	if !v.LastUse.IsZero() {
		last = v.LastUse.Format(time.DateTime)
	}
	fmt.Fprintf(w, "\t  add %s use %s last-use %s\n", v.AddTime.Format(time.DateTime), use, last)
	fmt.Fprintf(w, "\tstats:\n")
	fmt.Fprintf(w, "\t  seq 0x%x replay %d integrity %d other %d (seq_unreserved %d)\n", v.Cur.Seq, v.Cur.ReplayErrors,
		v.Cur.IntegrityErrors, v.Cur.OtherErrors, v.Cur.SeqUnreserved)
}

func limitText(n uint64) string {
	if n == 0 {
		return "(INF)"
	}
	return fmt.Sprint(n)
}

func offloadText(states []offload.IfaceState, list []string) string {
	if len(states) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(states))
	for _, s := range states {
		p := s.Iface + " " + string(s.Status)
		if s.Reason != "" {
			p += " (" + string(s.Reason)
			if s.Detail != "" {
				p += ": " + s.Detail
			}
			p += ")"
		} else if s.Detail != "" {
			p += " (" + s.Detail + ")"
		}
		parts = append(parts, p)
	}
	out := strings.Join(parts, ", ")
	if len(list) > 0 {
		out += " [list " + strings.Join(list, ",") + "]"
	}
	return out
}
