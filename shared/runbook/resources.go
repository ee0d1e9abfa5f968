package runbook

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resources are a step's memory and CPU limits. An agent caps them at its
// own maximums (and uses its defaults for what a runbook does not set).
type Resources struct {
	// Memory is in bytes (no swap); 0: the agent's default.
	Memory int64
	// NanoCPUs is in billionths of a CPU; 0: the agent's default.
	NanoCPUs int64
}

// Limits on resources a runbook may ask for.
const (
	MinMemory = 6 << 20 // Docker's own minimum
	MaxMemory = 1 << 40
	MaxCPUs   = 256
)

// ResourcesFor returns the step's resources: its own, else global's, per field.
func (rb *Runbook) ResourcesFor(s Step) Resources {
	r := rb.Global.Resources
	if s.Resources.Memory > 0 {
		r.Memory = s.Resources.Memory
	}
	if s.Resources.NanoCPUs > 0 {
		r.NanoCPUs = s.Resources.NanoCPUs
	}
	return r
}

var memoryUnits = []struct {
	suffix string
	mult   int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}}

// ParseMemory reads a size: bytes, or a number with Ki, Mi, Gi, Ti (powers
// of 1024) or K, M, G, T (powers of 1000).
func ParseMemory(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range memoryUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size: use bytes or a number with Ki, Mi, Gi (or K, M, G), such as 512Mi", s)
	}
	v := f * float64(mult)
	if v < MinMemory || v > MaxMemory {
		return 0, fmt.Errorf("%q: use %d MiB to %d TiB", s, MinMemory>>20, MaxMemory>>40)
	}
	return int64(v), nil
}

// resources reads {memory, cpus}.
func (p *parser) resources(n *yaml.Node, what string) Resources {
	var r Resources
	if !p.expect(n, yaml.MappingNode, what) {
		return r
	}
	p.fields(n, what, Keys["resources"], func(key string, k, v *yaml.Node) {
		text := p.scalar(v, what+"."+key)
		switch key {
		case "memory":
			m, err := ParseMemory(text)
			if err != nil {
				p.errorf(v, "%s.memory %v", what, err)
				return
			}
			r.Memory = m
		case "cpus":
			f, err := strconv.ParseFloat(text, 64)
			if err != nil || f < 0.01 || f > MaxCPUs {
				p.errorf(v, "%s.cpus %q: give a number of CPUs from 0.01 to %d, such as 1.5", what, text, MaxCPUs)
				return
			}
			r.NanoCPUs = int64(f * 1e9)
		}
	})
	return r
}
