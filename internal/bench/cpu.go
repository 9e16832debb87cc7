package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMark is a reading of the machine's CPU times (/proc/stat, in ticks) and this process's CPU time.
type cpuMark struct {
	user, sys, soft, idle, total float64
	self                         time.Duration
	at                           time.Time
}

func markCPU() cpuMark {
	m := cpuMark{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	v := make([]float64, 11)
	for i := 1; i < len(f) && i < len(v); i++ {
		v[i], _ = strconv.ParseFloat(f[i], 64)
	}
	m.user, m.sys, m.idle, m.soft = v[1]+v[2], v[3], v[4]+v[5], v[6]+v[7]
	m.total = m.user + m.sys + m.idle + m.soft + v[8]
	return m
}

// since is the CPU split from m to now.
func (m cpuMark) since() CPUSplit {
	n := markCPU()
	tot := n.total - m.total
	wall := n.at.Sub(m.at).Seconds()
	if tot <= 0 || wall <= 0 {
		return CPUSplit{}
	}
	return CPUSplit{User: (n.user - m.user) / tot, Sys: (n.sys - m.sys) / tot, Softirq: (n.soft - m.soft) / tot,
		Idle: (n.idle - m.idle) / tot, Self: (n.self - m.self).Seconds() / wall}
}

// loadAvg reads /proc/loadavg.
func loadAvg() [3]float64 {
	var l [3]float64
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(raw))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}
