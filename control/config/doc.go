// Package config reads xdpsec's YAML configuration: the instance, its two
// interfaces, the card's capacities, the SPD (policies) and the SAD (sas).
// The schema, with a full example, is in docs/config.md.
//
// Parsing is strict and complete. Unknown fields are errors; every problem in
// the file is reported at once (errors.Join of *Error values), each naming the
// file, the line, the SA or policy and the field, e.g.
//
//	gw.yaml:14: sa "gw1-to-gw2": aead.key: rfc4106(gcm(aes)) needs 20, 28 or 36 bytes …
//
// and a configuration with any error yields no Config, so nothing starts on a
// half-valid file. A value that does not parse (a bad prefix, a key that is
// not hex) stops nothing: the rest of the file is checked as well, and the
// field it broke is not reported a second time (as missing, say). Only text
// that is not YAML at all ends the checks at its first error. Sentinel errors (ErrKeyLength, ErrUnknownSA, …) let callers
// and tests tell the problems apart with errors.Is.
//
// The algorithm names, key lengths and ranges the ESP engine accepts are
// checked by the engine itself (esp.Params.Validate, through SA.ESPParams and
// the SAD's conversion, sadb.SA.ESPParams), so there is one list of what is
// supported. SAs and policies convert to the SAD's and SPD's types (SA.SADB,
// Policy.SADB, Policy.Selector), so the file means exactly what the reference
// classifier and the card do.
//
// Key material is held in Key values: every fmt verb, JSON and YAML print a
// placeholder with the length, never the bytes; Reveal is the one explicit way
// out (for `--show-keys`), and Wipe overwrites the bytes (copies of a Key share
// them, so wiping one wipes all). The bytes live in locked key memory
// (crypto/keymem), and a bad key names the position of its bad character,
// never the key's characters.
//
// LoadChecked is Load for the daemon: it refuses a file with keys that group
// or others can read, a file or directory above it that they can write, and
// one another user owns (as ssh treats a private key). CheckMetricsAddr keeps
// daemon.metrics on loopback unless daemon.metrics_public says otherwise.
//
// Diff compares two configurations: the SAs and policies added, removed and
// changed, by name, whether default_verdict changed, and which changed settings
// need a restart (instance, interfaces, capacities, dataplane, daemon). A reload
// (SIGHUP, `xdpsec reload`) takes the top-level part from it; the SAs and
// policies it compares with the SAD and SPD themselves (control/manager). An
// SA's seq field only restores state when the SA is added, so a seq that
// differs alone is not a change: a reload never moves a running SA's sequence
// number or window.
//
// The words of the file — dir, action, mode, proto, ports — are package ipsec's,
// read through small adapters (Dir, Action, Mode, Proto, Ports) that keep the
// line of a bad value in its error.
package config
