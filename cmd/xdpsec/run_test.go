package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunNeedsConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run"}, nil, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d (usage): %s", code, exitUsage, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--config") {
		t.Errorf("the error does not say how to give the configuration: %s", errOut.String())
	}
}

func TestRunRefusesUnknownInterface(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	err := os.WriteFile(cfg, []byte(`instance: xs-runtest
interfaces: {protected: xs-nonexist0, wire: xs-nonexist1}
policies: []
sas: []
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", cfg, "--no-api"}, nil, &out, &errOut); code != exitFailure {
		t.Fatalf("exit %d, want %d: %s", code, exitFailure, errOut.String())
	}
	if !strings.Contains(errOut.String(), "xs-nonexist0") {
		t.Errorf("the error does not name the missing interface: %s", errOut.String())
	}
	if _, err := os.Stat("/sys/fs/bpf/xdpsec/xs-runtest"); err == nil {
		t.Error("a failed start left pins behind")
	}
}

func TestRunRefusesConfigWithoutInterfaces(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(cfg, []byte("instance: xs-runtest2\npolicies: []\nsas: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", cfg}, nil, &out, &errOut); code == exitOK {
		t.Fatal("run started without interfaces")
	}
	if !strings.Contains(errOut.String(), "interfaces.protected") {
		t.Errorf("the error does not name the missing field: %s", errOut.String())
	}
}
