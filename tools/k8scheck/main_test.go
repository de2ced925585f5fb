package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped manifests pass, base, overlay and every build.
func TestShippedManifestsPass(t *testing.T) {
	var out bytes.Buffer
	r := &report{out: &out}
	if err := checkPath(r, filepath.Join("..", "..", "deploy", "kubernetes")); err != nil {
		t.Fatal(err)
	}
	if r.failures > 0 {
		t.Fatalf("%d failure(s):\n%s", r.failures, out.String())
	}
	for _, want := range []string{"Deployment/pulling-agent", "kustomize build ../../deploy/kubernetes/overlays/example"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not mention %q:\n%s", want, out.String())
		}
	}
}

// wantOf reads the fixture's first line, "# want: <text the failure must contain>".
func wantOf(t *testing.T, path string) string {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		path = filepath.Join(path, "kustomization.yaml")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	want, ok := strings.CutPrefix(strings.TrimSpace(line), "# want: ")
	if !ok {
		t.Fatalf("%s: the first line must be # want: <expected failure>", path)
	}
	return want
}

// Each fixture under testdata/bad holds one mistake (a misspelt field, a wrong type, a duplicate,
// a wrong case, an unknown kind, a bad quantity, a misspelt kustomization field, a patch that
// writes a misspelt field, selectors that select the wrong pods) and must fail with its message.
func TestBadFixturesFail(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 5 {
		t.Fatalf("expected the bad fixtures, found %d", len(entries))
	}
	for _, e := range entries {
		path := filepath.Join("testdata", "bad", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			want := wantOf(t, path)
			var out bytes.Buffer
			r := &report{out: &out, quiet: true}
			if err := checkPath(r, path); err != nil {
				t.Fatal(err)
			}
			if r.failures == 0 {
				t.Fatalf("accepted; want a failure containing %q", want)
			}
			if !strings.Contains(out.String(), want) {
				t.Fatalf("want a failure containing %q, got:\n%s", want, out.String())
			}
		})
	}
}
