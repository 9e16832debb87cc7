// Command xdpsec is the single binary of the xdpsec IPsec offload dataplane:
// the daemon (`xdpsec run`), the CLI that talks to it, the offline pcap tool
// and the demo. Each subcommand lives in its own file and registers itself in
// init (see root.go).
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
