package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureImports holds ARCHITECTURE.md's table to the code: every
// package it lists imports, of ours, only what its row allows, and every
// package of ours (but the command and the test helpers) has a row.
func TestArchitectureImports(t *testing.T) {
	doc, err := os.ReadFile("../../ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	const module = "supportbridge"
	row := regexp.MustCompile("(?m)^\\| `([a-z/]+)` \\|.*\\| ([^|]*) \\|$")
	tick := regexp.MustCompile("`([a-z/]+)`")
	allowed := map[string]map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		set := map[string]bool{}
		for _, a := range tick.FindAllStringSubmatch(m[2], -1) {
			set[module+"/"+a[1]] = true
		}
		allowed[module+"/"+m[1]] = set
	}
	if len(allowed) < 10 {
		t.Fatalf("read %d rows of the package table", len(allowed))
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := p.ImportPath
		if name == module+"/cmd/supportbridge" || strings.HasSuffix(name, "test") {
			continue // the command sees everything; test helpers serve tests
		}
		rules, ok := allowed[name]
		if !ok {
			t.Errorf("%s has no row in ARCHITECTURE.md", name)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			// A package may import its own leaves (config/whsec for config).
			if !rules[imp] && !strings.HasPrefix(imp, name+"/") {
				t.Errorf("%s imports %s, which its row in ARCHITECTURE.md does not allow", name, imp)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("checked %d packages", seen)
	}
}
