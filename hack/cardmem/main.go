// Command cardmem measures the kernel memory of the card's tables: it loads the card (unpinned, not
// attached) at the capacities given and prints each map's memlock as the kernel accounts it
// (/proc/self/fdinfo), then the total. docs/operations.md ("Capacity planning") quotes it; run as root:
//
//	go run ./hack/cardmem -sas 65536 -policies 16384 -flow-cache 65536
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/loader"
)

func main() {
	sas := flag.Uint("sas", loader.DefaultSAs, "capacities.sas")
	policies := flag.Uint("policies", loader.DefaultPolicies, "capacities.policies")
	flows := flag.Uint("flow-cache", loader.DefaultFlowCache, "capacities.flow_cache")
	flag.Parse()
	card, err := loader.Load(loader.Config{SAs: uint32(*sas), Policies: uint32(*policies), FlowCache: uint32(*flows)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cardmem:", err)
		os.Exit(1)
	}
	defer card.Close()
	type row struct {
		name             string
		max              uint32
		memlock          uint64
		typ              ebpf.MapType
		keySize, valSize uint32
	}
	var rows []row
	var total uint64
	v := reflect.ValueOf(&card.Objects().CardMaps).Elem()
	for i := 0; i < v.NumField(); i++ {
		m, ok := v.Field(i).Interface().(*ebpf.Map)
		if !ok || m == nil {
			continue
		}
		n, err := memlock(m.FD())
		if err != nil {
			fmt.Fprintln(os.Stderr, "cardmem:", err)
			os.Exit(1)
		}
		rows = append(rows, row{v.Type().Field(i).Tag.Get("ebpf"), m.MaxEntries(), n, m.Type(), m.KeySize(), m.ValueSize()})
		total += n
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].memlock > rows[j].memlock })
	fmt.Printf("capacities: sas %d policies %d flow_cache %d\n", *sas, *policies, *flows)
	for _, r := range rows {
		fmt.Printf("%-14s %-12v key %3d value %4d entries %8d memlock %11d B\n", r.name, r.typ, r.keySize, r.valSize, r.max, r.memlock)
	}
	fmt.Printf("total %d B (%.1f MiB)\n", total, float64(total)/(1<<20))
}

// memlock reads the kernel's memory accounting of the map behind fd.
func memlock(fd int) (uint64, error) {
	f, err := os.Open("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "memlock:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("fdinfo %d: no memlock", fd)
}
