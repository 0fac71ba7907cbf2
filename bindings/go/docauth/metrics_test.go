package docauth

import (
	"errors"
	"strings"
	"testing"
)

func TestMetricsCountDecisionsExactly(t *testing.T) {
	e, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rt, err := NewRuntime(1)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	for i := 0; i < 3; i++ {
		if d, err := e.Decide(alice("test")); err != nil || !d.Allowed {
			t.Fatalf("allow: %+v %v", d, err)
		}
	}
	if d, err := e.Decide(alice("admin")); err != nil || d.Allowed {
		t.Fatalf("deny: %+v %v", d, err)
	}
	families, err := Metrics(rt, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(family, suffix string, want float64, labels ...string) {
		t.Helper()
		f, ok := families[family]
		if !ok {
			t.Fatalf("no family %s", family)
		}
		got, ok := f.Value(suffix, labels...)
		if !ok || got != want {
			t.Fatalf("%s%s%v = %v (found %v), want %v", family, suffix, labels, got, ok, want)
		}
	}
	expect("docauth_policy_decisions", "", 3, "outcome", "allowed")
	expect("docauth_policy_decisions", "", 1, "outcome", "denied")
	expect("docauth_policy_cache_hits", "", 2)
	expect("docauth_policy_cache_misses", "", 2)
	expect("docauth_policy_decision_duration_seconds", "_count", 2)
	expect("docauth_policy_decision_duration_seconds", "_bucket", 2, "le", "+Inf")
	expect("docauth_sessions_started", "", 0)
	expect("docauth_sessions_active", "", 0)
	expect("docauth_messages_judged", "", 0, "verdict", "denied", "class", "this_db")
	if got := families["docauth_policy_decision_duration_seconds"].Type; got != "histogram" {
		t.Fatalf("type %q", got)
	}
	if _, ok := families["docauth_sts_calls"]; ok {
		t.Fatal("a provider's metrics without a provider")
	}
}

func TestMetricsFormatsAndErrors(t *testing.T) {
	e, err := NewEngine(policyConfig)
	if err != nil {
		t.Fatal(err)
	}
	text, err := MetricsText(nil, e, nil, FormatOpenMetrics)
	if err != nil || !strings.HasSuffix(text, "# EOF\n") ||
		!strings.Contains(text, "# UNIT docauth_policy_decision_duration_seconds seconds\n") {
		t.Fatalf("openmetrics: %v\n%s", err, text)
	}
	if ct := FormatPrometheus.ContentType(); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	if ct := MetricsFormat(9).ContentType(); ct != "" {
		t.Fatalf("unknown format's content type %q", ct)
	}
	if _, err := MetricsText(nil, e, nil, MetricsFormat(9)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown format: %v", err)
	}
	e.Close()
	if _, err := MetricsText(nil, e, nil, FormatPrometheus); err == nil {
		t.Fatal("a closed engine was rendered")
	}
}
