package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Endpoint is where the daemon of a configuration file serves its API: what a client command
// needs of the file, and all it reads of it.
type Endpoint struct {
	Instance string
	Socket   string
	// SocketSet is true when the file names daemon.socket; else Socket is the instance's default.
	SocketSet bool
}

// ReadEndpoint reads the instance and daemon.socket of a configuration file, and nothing else:
// a client talking to the daemon must not be stopped by a problem elsewhere in the file (someone
// may be editing it; the daemon runs on what it read at start or at the last reload). When the
// file is not valid YAML as a whole, the two settings are read from their own lines. Only a
// file that cannot be read, or an instance or socket that is itself wrong, is an error. The
// file's text, which may hold keys, is wiped after.
func ReadEndpoint(path string) (Endpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return Endpoint{}, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	var instance, socket string
	if err := readText(f, func(data []byte) { instance, socket = endpointOf(data) }); err != nil {
		return Endpoint{}, fmt.Errorf("read config %s: %w", path, err)
	}
	ep := Endpoint{Instance: instance, Socket: socket, SocketSet: socket != ""}
	if ep.Instance == "" {
		ep.Instance = DefaultInstance
	}
	if !instanceRE.MatchString(ep.Instance) {
		return Endpoint{}, fmt.Errorf("read config %s: instance %q: %w: want 1-32 letters, digits, '-' or '_'", path, ep.Instance, ErrInvalid)
	}
	if !ep.SocketSet {
		ep.Socket = DefaultSocket(ep.Instance)
	} else if !filepath.IsAbs(ep.Socket) {
		return Endpoint{}, fmt.Errorf("read config %s: daemon.socket %q: %w: want an absolute path", path, ep.Socket, ErrInvalid)
	}
	return ep, nil
}

// endpointOf finds the instance and daemon.socket in a file's text: through YAML when the text is
// YAML, else line by line.
func endpointOf(data []byte) (instance, socket string) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil {
		if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
			return "", ""
		}
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i].Value, m.Content[i+1]
			switch {
			case k == "instance" && v.Kind == yaml.ScalarNode:
				instance = v.Value
			case k == "daemon" && v.Kind == yaml.MappingNode:
				for j := 0; j+1 < len(v.Content); j += 2 {
					if v.Content[j].Value == "socket" && v.Content[j+1].Kind == yaml.ScalarNode {
						socket = v.Content[j+1].Value
					}
				}
			}
		}
		return strings.TrimSpace(instance), strings.TrimSpace(socket)
	}
	return endpointLines(string(data))
}

var (
	topInstanceRE = regexp.MustCompile(`^instance:\s*(.*?)\s*(?:#.*)?$`)
	topDaemonRE   = regexp.MustCompile(`^daemon:\s*(.*?)\s*(?:#.*)?$`)
	socketRE      = regexp.MustCompile(`(?:^|[{,\s])socket:\s*("[^"]*"|'[^']*'|[^,}\s#]+)`)
)

// endpointLines reads the two settings from the lines that write them, for a file that is not
// YAML as a whole: `instance: NAME` at the start of a line, and `socket: PATH` inside `daemon:`,
// in block (indented lines below it) or flow style (`daemon: {socket: PATH}`).
func endpointLines(text string) (instance, socket string) {
	inDaemon := false
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, "\r")
		top := l != "" && l[0] != ' ' && l[0] != '\t' && l[0] != '#'
		switch m := topDaemonRE.FindStringSubmatch(l); {
		case m != nil:
			inDaemon = m[1] == ""
			if sm := socketRE.FindStringSubmatch(m[1]); sm != nil {
				socket = sm[1]
			}
		case top:
			inDaemon = false
			if im := topInstanceRE.FindStringSubmatch(l); im != nil {
				instance = im[1]
			}
		case inDaemon:
			if sm := socketRE.FindStringSubmatch(l); sm != nil {
				socket = sm[1]
			}
		}
	}
	return unquote(instance), unquote(socket)
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		return s[1 : len(s)-1]
	}
	if u, err := strconv.Unquote(s); err == nil && strings.HasPrefix(s, `"`) {
		return u
	}
	return s
}
