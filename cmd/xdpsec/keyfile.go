package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyFile bounds what --key-file reads: a few keys.
const maxKeyFile = 64 << 10

// readKeyFile reads `sa add --key-file`: a file, or standard input for "-". A regular file that group
// or others can read is refused, as ssh refuses such a private key. The caller wipes the result.
func (a *App) readKeyFile(name string) ([]byte, error) {
	var r io.Reader = a.In
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read keys: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("read keys: %w", err)
		}
		// Pipes and process substitution (<(pass show …)) are private to this process tree.
		if perm := st.Mode().Perm(); st.Mode().IsRegular() && perm&0o044 != 0 {
			return nil, fmt.Errorf("read keys from %s: mode %04o lets others read them: run chmod 600 %s", name, perm, name)
		}
		r = f
	}
	if r == nil {
		return nil, fmt.Errorf("read keys: no standard input")
	}
	// One buffer, read into in place: a growing one would leave copies of the keys behind.
	buf := make([]byte, maxKeyFile+1)
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n], nil
	case err == nil:
		err = fmt.Errorf("more than %d bytes", maxKeyFile)
	}
	clear(buf[:n])
	return nil, fmt.Errorf("read keys from %s: %w", name, err)
}

// keyLines splits a key file into its keys: one per line, spaces trimmed, empty lines and # comments
// skipped. The keys alias text.
func keyLines(text []byte) [][]byte {
	var keys [][]byte
	for line := range bytes.Lines(text) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			keys = append(keys, line)
		}
	}
	return keys
}
