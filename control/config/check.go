package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Finding is one problem `xdpsec config check` reports: an *Error located as Parse's are, and
// whether it is only a warning (the file may still be right where it will run, such as an
// interface this machine lacks) rather than something `xdpsec run` would refuse or fail on.
type Finding struct {
	*Error
	Warning bool
}

// Checked is a configuration file as `xdpsec config check` sees it: what decoded of it, with
// defaults filled in (nil when the file cannot be read or is not YAML), and every problem found.
// The checks of this package run in CheckFile; those that need the machine or the control plane
// (cmd/xdpsec) add theirs with Add, located by the SA's or policy's name.
type Checked struct {
	// Config is the configuration as far as it decoded. Entries with problems are in it too: a
	// caller that goes on checking must not take it for a valid configuration (Valid tells).
	Config   *Config
	Findings []Finding
	pos      *positions
	// valid is what the file's own checks left without an error: the top level, and SAs and
	// policies by index.
	topOK          bool
	saOK, policyOK []bool
}

// CheckFile runs every check `xdpsec run` makes of a configuration file before it starts, and
// reports every problem at once rather than the first: LoadChecked's checks of who can read and
// change the file (errors: run would refuse it), the file's syntax and every field (Parse's
// checks, all of them also when a value does not parse), and that both interfaces are named
// (RequireDataplane). It then adds what is no error for the daemon but is likely one in the file:
// an SA no policy uses, by name or reqid (a warning). The keys of the Config it returns are the
// caller's to wipe.
func CheckFile(path string) *Checked {
	ck := &Checked{pos: &positions{}}
	f, err := os.Open(path)
	if err != nil {
		ck.fileProblem(path, err)
		return ck
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		ck.fileProblem(path, err)
		return ck
	}
	if err := checkFile(path, st); err != nil {
		ck.fileProblem(path, err)
	}
	if err := checkParents(path); err != nil {
		ck.fileProblem(path, err)
	}
	var errs []error
	if err := readText(f, func(data []byte) { ck.Config, ck.pos, errs = parse(path, data) }); err != nil {
		ck.fileProblem(path, err)
		return ck
	}
	c := ck.Config
	if c != nil {
		if err := c.checkKeysPrivate(path, st); err != nil {
			ck.fileProblem(path, err)
		}
		// What xdpsec run needs beyond Parse: both interfaces (unless Parse said already).
		for _, err := range unjoin(c.RequireDataplane()) {
			var e *Error
			if err == nil || !errors.As(err, &e) || slices.ContainsFunc(errs, func(o error) bool {
				var oe *Error
				return errors.As(o, &oe) && oe.Section == "" && oe.Field == e.Field
			}) {
				continue
			}
			if e.Line = ck.pos.lineOf(ck.pos.top, e.Field); !ck.pos.isBroken("", 0, e.Field, e.Line) {
				errs = append(errs, e)
			}
		}
	}
	ck.noteValid(errs)
	for _, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{File: path, Err: err}
		}
		ck.Findings = append(ck.Findings, Finding{Error: e})
	}
	if c != nil {
		ck.unusedSAs()
	}
	ck.Sort()
	return ck
}

// fileProblem reports a problem with the file as a whole (it cannot be read, or others could read
// or change it).
func (ck *Checked) fileProblem(path string, err error) {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err) // the path is the Error's File
	}
	ck.Findings = append(ck.Findings, Finding{Error: &Error{File: path, Err: err}})
}

// noteValid records which parts of the file have no error of their own.
func (ck *Checked) noteValid(errs []error) {
	c := ck.Config
	if c == nil {
		return
	}
	ck.topOK = true
	ck.saOK = make([]bool, len(c.SAs))
	ck.policyOK = make([]bool, len(c.Policies))
	for i := range ck.saOK {
		ck.saOK[i] = true
	}
	for i := range ck.policyOK {
		ck.policyOK[i] = true
	}
	for _, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			ck.topOK = false
			continue
		}
		switch e.Section {
		case "sa":
			if i := ck.index(e.Section, e.Name); i >= 0 {
				ck.saOK[i] = false
			}
		case "policy":
			if i := ck.index(e.Section, e.Name); i >= 0 {
				ck.policyOK[i] = false
			}
		default:
			ck.topOK = false
		}
	}
	for _, it := range ck.pos.items {
		if b := ck.pos.broken[itemKey{it.section, it.index}]; b != nil {
			ck.setOK(it.section, it.index, false)
		}
	}
	if ck.pos.broken[itemKey{}] != nil {
		ck.topOK = false
	}
}

func (ck *Checked) setOK(section string, i int, ok bool) {
	switch {
	case section == "sa" && i < len(ck.saOK):
		ck.saOK[i] = ok
	case section == "policy" && i < len(ck.policyOK):
		ck.policyOK[i] = ok
	}
}

// index finds the entry an Error names: by entryName ("\"gw1-out\"" or "#3"), or -1.
func (ck *Checked) index(section, name string) int {
	c := ck.Config
	n := 0
	switch section {
	case "sa":
		n = len(c.SAs)
	case "policy":
		n = len(c.Policies)
	}
	for i := range n {
		own := ""
		if section == "sa" {
			own = c.SAs[i].Name
		} else {
			own = c.Policies[i].Name
		}
		if entryName(own, i) == name {
			return i
		}
	}
	return -1
}

// ValidSA and ValidPolicy report whether the file's own checks found nothing wrong with an entry;
// ValidTop whether they found nothing wrong outside the SAs and policies. Checks that go on from
// the file (a dry run of the control plane) take only valid entries, so that what they say is
// about the entry and not about a mistake already reported.
func (ck *Checked) ValidSA(i int) bool     { return i < len(ck.saOK) && ck.saOK[i] }
func (ck *Checked) ValidPolicy(i int) bool { return i < len(ck.policyOK) && ck.policyOK[i] }
func (ck *Checked) ValidTop() bool         { return ck.topOK }

// Add reports a problem with the SA or policy called name (section "sa" or "policy"; "" for the
// top level, field then being a top-level path such as "interfaces.wire"), located in the file
// as Parse locates its errors.
func (ck *Checked) Add(section, name, field string, warning bool, err error) {
	file := ""
	if ck.Config != nil {
		file = ck.Config.File
	}
	var e *Error
	switch i := -1; section {
	case "sa", "policy":
		if ck.Config != nil {
			i = ck.index(section, entryName(name, -1))
		}
		e = ck.pos.fieldErr(file, section, i, name, field, err)
		if i < 0 {
			e.Name = entryName(name, 0)
		}
	default:
		e = ck.pos.fieldErr(file, "", 0, "", field, err)
	}
	ck.Findings = append(ck.Findings, Finding{Error: e, Warning: warning})
}

// Sort puts the findings in file order (those without a line first).
func (ck *Checked) Sort() {
	slices.SortStableFunc(ck.Findings, func(a, b Finding) int { return a.Line - b.Line })
}

// Errors counts the findings that are not warnings: `xdpsec config check` fails when there is one.
func (ck *Checked) Errors() int {
	n := 0
	for _, f := range ck.Findings {
		if !f.Warning {
			n++
		}
	}
	return n
}

// unusedSAs warns of SAs no policy of the file uses, by name or by reqid: the daemon installs them
// (or, inbound, refuses them until a policy points at them), but no traffic is selected for them
// unless a key manager adds policies later.
func (ck *Checked) unusedSAs() {
	c := ck.Config
	names, reqids := map[string]bool{}, map[uint32]bool{}
	for i := range c.Policies {
		p := &c.Policies[i]
		names[p.SA] = true
		if p.Reqid != 0 {
			reqids[p.Reqid] = true
		}
	}
	for i := range c.SAs {
		s := &c.SAs[i]
		if s.Name == "" || names[s.Name] || (s.Reqid != 0 && reqids[s.Reqid]) {
			continue
		}
		how := "by name"
		if s.Reqid != 0 {
			how = fmt.Sprintf("by name or by its reqid %d", s.Reqid)
		}
		ck.Add("sa", s.Name, "", true, fmt.Errorf("no policy uses it (%s): no traffic is selected for it", how))
	}
}
