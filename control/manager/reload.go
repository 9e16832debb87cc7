package manager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// ReloadResult says what a reload did, by name: the API's schema.
type ReloadResult = api.ReloadResult

// ReloadFile re-reads the configuration file and applies the differences (SIGHUP, `xdpsec reload`).
// The file must pass the same checks as at start (config.LoadChecked).
func (m *Manager) ReloadFile() (ReloadResult, error) {
	cfg, err := config.LoadChecked(m.opts.ConfigPath)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("reload: %w", err)
	}
	return m.ReloadConfig(cfg)
}

// ReloadConfig applies the differences between the configuration in force and cfg, which the manager
// keeps. The configuration it replaces is wiped (the SAD holds its own copies of the keys), and so is
// cfg when the reload fails.
func (m *Manager) ReloadConfig(cfg *config.Config) (ReloadResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res, err := m.apply(m.cfg, cfg)
	if err != nil {
		if cfg != m.cfg {
			cfg.Wipe()
		}
		return res, fmt.Errorf("reload: %w", err)
	}
	if m.cfg != cfg {
		m.cfg.Wipe()
	}
	m.cfg = cfg
	m.log.Info("configuration reloaded", "sas_added", len(res.SAsAdded), "sas_updated", len(res.SAsUpdated),
		"sas_replaced", len(res.SAsReplaced), "sas_deleted", len(res.SAsDeleted),
		"policies_added", len(res.PoliciesAdded), "policies_updated", len(res.PoliciesUpdated),
		"policies_deleted", len(res.PoliciesDeleted), "default_verdict", res.DefaultVerdict, "restart_needed", res.Restart)
	return res, nil
}

// notOurs says why a reload leaves an entry alone: the file names it, but it was added at run time.
func notOurs(what, name string, o sadb.Owner) error {
	return fmt.Errorf("%s %q: the name belongs to a %s of owner %s, added at run time; a reload touches only the file's own (owner config): left alone",
		what, name, what, o)
}

// outboundSAs are the configuration's SAs that will be installed outbound: those with dir out, and
// those without a dir that no inbound PROTECT policy of the file names (the driver further leaves
// out SAs towards one of the gateway's own addresses).
func outboundSAs(cfg *config.Config) []sadb.SA {
	inName, inReqid := map[string]bool{}, map[uint32]bool{}
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		if p.Dir.Dir == ipsec.DirIn && p.Action.Action == ipsec.ActionProtect {
			inName[p.SA], inReqid[p.Reqid] = true, true
		}
	}
	var out []sadb.SA
	for i := range cfg.SAs {
		c := &cfg.SAs[i]
		if inName[c.Name] || (c.Reqid != 0 && inReqid[c.Reqid]) {
			continue
		}
		out = append(out, c.SADB())
	}
	return out
}

func policySame(cur *sadb.PolicyEntry, want *sadb.Policy) bool {
	a, b := cur.Policy, *want
	if a.Dir != b.Dir || a.Sel != b.Sel || a.Priority != b.Priority || a.Action != b.Action ||
		!slices.Equal(a.Offload, b.Offload) || (a.Tmpl == nil) != (b.Tmpl == nil) {
		return false
	}
	return a.Tmpl == nil || (a.Tmpl.SA == b.Tmpl.SA && a.Tmpl.Reqid == b.Tmpl.Reqid)
}

// apply moves the store from old (nil at start) to cfg, by name. Order: new and replacing SAs first, then
// policies, then deletions of policies and SAs, so the offload engine can move every policy to its new SA
// before the old one goes (make-before-break).
func (m *Manager) apply(old, cfg *config.Config) (ReloadResult, error) {
	var res ReloadResult
	var errs []error
	if old != nil {
		// The top-level settings: what the file changed (the SAs and policies below are compared
		// with the SAD and SPD themselves, so changes made through the API are seen too).
		d := config.Diff(old, cfg)
		res.Restart = d.Restart
		if d.DefaultVerdict {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := m.engine.SetDefaults(ctx, cfg.DefaultVerdict.Defaults())
			cancel()
			switch {
			case errors.Is(err, offload.ErrNoDefaults):
				res.Restart = append(res.Restart, "default_verdict")
			case err != nil:
				errs = append(errs, fmt.Errorf("default_verdict: %w", err))
			default:
				res.DefaultVerdict = true
			}
		}
	}
	if m.opts.Keys != nil {
		// One write reserves the first numbers of every outbound SA the engine is about to
		// install (each would otherwise write on its own). Failing, each reserves for itself.
		if err := m.opts.Keys.Prepare(outboundSAs(cfg)); err != nil {
			m.log.Warn("prepare sequence reservations", "err", err)
		}
	}
	wantSA := map[string]bool{}
	for i := range cfg.SAs {
		c := &cfg.SAs[i]
		wantSA[c.Name] = true
		sa := c.SADB()
		cur, err := m.store.GetSA(sadb.Ref{Name: c.Name}, true)
		switch {
		case errors.Is(err, sadb.ErrNotFound):
			if _, err := m.AddSA(sa); err != nil {
				errs = append(errs, fmt.Errorf("sa %q: %w", c.Name, err))
				continue
			}
			res.SAsAdded = append(res.SAsAdded, c.Name)
		case err != nil:
			errs = append(errs, fmt.Errorf("sa %q: %w", c.Name, err))
		case cur.Owner != sadb.OwnerConfig:
			errs = append(errs, notOurs("sa", c.Name, cur.Owner))
			cur.Wipe()
		default:
			switch change, _ := sadb.Compare(&cur.SA, &sa); change {
			case sadb.Unchanged:
				res.SAsUnchanged++
			case sadb.InPlace:
				if _, err := m.UpdateSA(sa); err != nil {
					errs = append(errs, fmt.Errorf("sa %q: %w", c.Name, err))
					break
				}
				res.SAsUpdated = append(res.SAsUpdated, c.Name)
			default:
				// A new SA under the same name, in one change of the store: the engine installs the new
				// one and moves the policies naming it before the old one leaves the card. (With the
				// same SPI and destination the card cannot hold both: the old one leaves first.) It
				// must come with a new key: under the old one it would start the key's sequence
				// numbers, and its AEAD nonces, over.
				if _, what := sadb.Compare(&cur.SA, &sa); sadb.SameKey(&cur.SA, &sa) {
					errs = append(errs, fmt.Errorf("sa %q: %s changed but the key did not: %w: a new SA needs a new key "+
						"(under the running SA's key its sequence numbers would start over)", c.Name, what, sadb.ErrImmutable))
					break
				}
				if err := m.replaceSA(sadb.Ref{Name: c.Name}, sa); err != nil {
					errs = append(errs, fmt.Errorf("sa %q: %w", c.Name, err))
					break
				}
				res.SAsReplaced = append(res.SAsReplaced, c.Name)
			}
			cur.Wipe()
		}
	}
	wantPol := map[string]bool{}
	for i := range cfg.Policies {
		c := &cfg.Policies[i]
		wantPol[c.Name] = true
		p := c.SADB()
		cur, err := m.store.GetPolicy(sadb.PolicyRef{Name: c.Name})
		switch {
		case errors.Is(err, sadb.ErrNotFound):
			if _, err := m.AddPolicy(p); err != nil {
				errs = append(errs, fmt.Errorf("policy %q: %w", c.Name, err))
				continue
			}
			res.PoliciesAdded = append(res.PoliciesAdded, c.Name)
		case err != nil:
			errs = append(errs, fmt.Errorf("policy %q: %w", c.Name, err))
		case cur.Owner != sadb.OwnerConfig:
			errs = append(errs, notOurs("policy", c.Name, cur.Owner))
		case !policySame(&cur, &p):
			if _, err := m.UpdatePolicy(p); err != nil {
				errs = append(errs, fmt.Errorf("policy %q: %w", c.Name, err))
				continue
			}
			res.PoliciesUpdated = append(res.PoliciesUpdated, c.Name)
		}
	}
	if old != nil {
		for i := range old.Policies {
			if n := old.Policies[i].Name; !wantPol[n] {
				if _, err := m.DeletePolicyOf(sadb.PolicyRef{Name: n}, sadb.Only(sadb.OwnerConfig)); err != nil && !errors.Is(err, sadb.ErrNotFound) {
					errs = append(errs, fmt.Errorf("policy %q: %w", n, err))
					continue
				}
				res.PoliciesDeleted = append(res.PoliciesDeleted, n)
			}
		}
		for i := range old.SAs {
			if n := old.SAs[i].Name; !wantSA[n] {
				if cur, err := m.store.GetSA(sadb.Ref{Name: n}, false); err == nil && cur.Owner != sadb.OwnerConfig {
					continue // the name went to an SA added at run time: not the file's to delete
				}
				if _, err := m.DeleteSA(sadb.Ref{Name: n}); err != nil && !errors.Is(err, sadb.ErrNotFound) {
					errs = append(errs, fmt.Errorf("sa %q: %w", n, err))
					continue
				}
				res.SAsDeleted = append(res.SAsDeleted, n)
			}
		}
	}
	return res, errors.Join(errs...)
}
