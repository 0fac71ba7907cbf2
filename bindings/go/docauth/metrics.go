package docauth

// #include "include_docauth.h"
import "C"

import (
	"fmt"
	"strconv"
	"strings"
)

// MetricsFormat is the exposition format of MetricsText.
type MetricsFormat uint32

const (
	// FormatPrometheus is the Prometheus text format, version 0.0.4.
	FormatPrometheus MetricsFormat = C.DOCAUTH_METRICS_FORMAT_PROMETHEUS
	// FormatOpenMetrics is OpenMetrics 1.0 text (# UNIT lines, # EOF at the end).
	FormatOpenMetrics MetricsFormat = C.DOCAUTH_METRICS_FORMAT_OPENMETRICS
)

// ContentType is the HTTP Content-Type of the format ("" for an unknown format).
func (f MetricsFormat) ContentType() string {
	p := C.docauth_metrics_content_type(C.docauth_metrics_format(f))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// MetricsText renders the current metrics of a runtime (its sessions), an engine (its
// decisions) and a credentials provider (its STS calls) in format, for a host to serve at
// /metrics with format.ContentType(). Any of the three may be nil: its metrics are left out.
// Every name starts with docauth_; labels only take fixed values (docs/metrics.md lists
// them). Safe to call from any goroutine while sessions run.
func MetricsText(r *Runtime, e *Engine, p *CredentialsProvider, format MetricsFormat) (string, error) {
	var text string
	err := withRuntime(r, func(rp *C.docauth_runtime) error {
		return withEngine(e, func(ep *C.docauth_engine) error {
			return withProvider(p, func(pp *C.docauth_credentials_provider) error {
				var out *C.docauth_bytes
				var cerr *C.docauth_error
				res := C.docauth_metrics_render(rp, ep, pp, C.docauth_metrics_format(format), &out, &cerr)
				if err := takeError(res, cerr); err != nil {
					return err
				}
				text = string(takeBytes(out))
				return nil
			})
		})
	})
	return text, err
}

func withRuntime(r *Runtime, f func(*C.docauth_runtime) error) error {
	if r == nil {
		return f(nil)
	}
	return r.use(f)
}

func withEngine(e *Engine, f func(*C.docauth_engine) error) error {
	if e == nil {
		return f(nil)
	}
	return e.use(f)
}

func withProvider(p *CredentialsProvider, f func(*C.docauth_credentials_provider) error) error {
	if p == nil {
		return f(nil)
	}
	return p.use(f)
}

// Sample is one line of the exposition: name{labels} value. A histogram has _bucket (with
// label le), _sum and _count samples; a counter's sample ends with _total.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// MetricFamily is one metric: its name (without a counter's _total), type ("counter",
// "gauge", "histogram"), help text and samples.
type MetricFamily struct {
	Name    string
	Type    string
	Help    string
	Samples []Sample
}

// Value is the value of the sample named Name+suffix (a counter's _total is found with
// suffix "") whose labels are exactly labels (given as key, value pairs); false if absent.
func (f *MetricFamily) Value(suffix string, labels ...string) (float64, bool) {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, s := range f.Samples {
		if s.Name != f.Name+suffix && (suffix != "" || s.Name != f.Name+"_total") {
			continue
		}
		if len(s.Labels) != len(want) {
			continue
		}
		same := true
		for k, v := range want {
			if s.Labels[k] != v {
				same = false
				break
			}
		}
		if same {
			return s.Value, true
		}
	}
	return 0, false
}

// Metrics returns the current metrics as values, by family name (docauth_sessions_started,
// docauth_upstream_phase_duration_seconds, ...), for hosts that feed their own metrics
// library.
func Metrics(r *Runtime, e *Engine, p *CredentialsProvider) (map[string]*MetricFamily, error) {
	text, err := MetricsText(r, e, p, FormatPrometheus)
	if err != nil {
		return nil, err
	}
	return ParseMetrics(text)
}

// ParseMetrics reads the Prometheus or OpenMetrics text this library renders (not any
// exposition: only what docauth_metrics_render writes).
func ParseMetrics(text string) (map[string]*MetricFamily, error) {
	families := map[string]*MetricFamily{}
	family := func(name string) *MetricFamily {
		// Only counters' names end with _total here (no other family of this library's does).
		name = strings.TrimSuffix(name, "_total")
		f, ok := families[name]
		if !ok {
			f = &MetricFamily{Name: name, Type: "untyped"}
			families[name] = f
		}
		return f
	}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line == "# EOF" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			parts := strings.SplitN(line, " ", 4)
			if len(parts) < 3 {
				continue
			}
			rest := ""
			if len(parts) == 4 {
				rest = parts[3]
			}
			switch parts[1] {
			case "TYPE":
				family(parts[2]).Type = rest
			case "HELP":
				family(parts[2]).Help = unescape(rest)
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		var f *MetricFamily
		for _, suffix := range []string{"", "_total", "_bucket", "_sum", "_count"} {
			if g, ok := families[strings.TrimSuffix(s.Name, suffix)]; ok && strings.HasSuffix(s.Name, suffix) {
				f = g
				break
			}
		}
		if f == nil {
			f = family(s.Name)
		}
		f.Samples = append(f.Samples, s)
	}
	return families, nil
}

func parseSample(line string) (Sample, error) {
	bad := func() (Sample, error) {
		return Sample{}, newGoError(ResultInvalidArgument, fmt.Sprintf("not a sample line: %q", line), nil)
	}
	s := Sample{Labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return bad()
	} else {
		s.Name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return bad()
			}
			key := strings.TrimLeft(rest[:eq], ", ")
			rest = rest[eq+2:]
			var value strings.Builder
			for {
				if rest == "" {
					return bad()
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' && rest != "" {
					c = rest[0]
					rest = rest[1:]
					if c == 'n' {
						c = '\n'
					}
				}
				value.WriteByte(c)
			}
			s.Labels[key] = value.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return bad()
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return bad()
	}
	s.Value = v
	return s, nil
}

func unescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(s)
}
