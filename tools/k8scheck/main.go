// k8scheck validates Kubernetes manifests without a cluster: every YAML document is decoded
// strictly into the Kubernetes API's own Go types (an unknown or misspelt field, a duplicate field,
// a wrong type or an unknown kind fails), every kustomization.yaml is decoded strictly and built in
// process with kustomize's krusty (no kustomize binary), and the built objects are checked the same
// way, plus a few cross-object rules the API server would not catch (selectors that select nothing
// or the wrong pods, probes on undeclared ports, mounts of undeclared volumes).
//
//	k8scheck [-q] PATH...   a file or a folder (searched recursively); exit 1 when anything fails
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// report collects what one run found: a failure makes the exit code 1, a note is information.
type report struct {
	out      io.Writer
	quiet    bool
	failures int
}

func (r *report) ok(format string, args ...any) {
	if !r.quiet {
		fmt.Fprintf(r.out, "ok    "+format+"\n", args...)
	}
}

func (r *report) note(format string, args ...any) {
	if !r.quiet {
		fmt.Fprintf(r.out, "note  "+format+"\n", args...)
	}
}

func (r *report) fail(format string, args ...any) {
	r.failures++
	fmt.Fprintf(r.out, "FAIL  "+format+"\n", args...)
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func isKustomization(name string) bool {
	switch filepath.Base(name) {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// checkPath checks one file, or every YAML file and every kustomization under a folder.
func checkPath(r *report, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		if isKustomization(path) {
			checkKustomization(r, filepath.Dir(path), path)
		} else {
			checkFile(r, path)
		}
		return nil
	}
	var files, kustomizations []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return nil
		case isKustomization(p):
			kustomizations = append(kustomizations, p)
		case isYAML(p):
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(files)+len(kustomizations) == 0 {
		return fmt.Errorf("%s: no YAML file in it", path)
	}
	sort.Strings(files)
	sort.Strings(kustomizations)
	for _, f := range files {
		checkFile(r, f)
	}
	for _, k := range kustomizations {
		checkKustomization(r, filepath.Dir(k), k)
	}
	return nil
}

func main() {
	quiet := flag.Bool("q", false, "print failures only")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "Usage: k8scheck [-q] PATH...\n\nChecks Kubernetes manifests and kustomizations strictly against the API types (exit 1 on any failure).")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	r := &report{out: os.Stdout, quiet: *quiet}
	for _, path := range flag.Args() {
		if err := checkPath(r, path); err != nil {
			r.fail("%v", err)
		}
	}
	if r.failures > 0 {
		fmt.Printf("k8scheck: %d failure(s)\n", r.failures)
		os.Exit(1)
	}
}
