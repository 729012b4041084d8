package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"supportbridge/config"
)

// TestREADMEFacts keeps the README's reference parts true: its Commands
// block names every command of the usage, its configuration table every key
// of every section, and its Go version the one go.mod names.
func TestREADMEFacts(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	block := regexp.MustCompile("(?s)## Commands\n\n```sh\n(.*?)```").FindStringSubmatch(readme)
	if block == nil {
		t.Fatal("no Commands block")
	}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]+) `).FindAllStringSubmatch(usage, -1) {
		if !strings.Contains(block[1], "supportbridge "+m[1]) {
			t.Errorf("the Commands block lacks %q", m[1])
		}
	}

	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| (top|`[a-z_]+`) \\| (.*) \\|$").FindAllStringSubmatch(readme, -1) {
		rows[strings.Trim(m[1], "`")] = m[2]
	}
	ct := reflect.TypeOf(config.Config{})
	for i := 0; i < ct.NumField(); i++ {
		f := ct.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if f.Type.Kind() != reflect.Struct {
			if row, ok := rows[name]; ok && f.Type.Kind() == reflect.Slice {
				_ = row // a list section (structures) has a row of its own
				continue
			}
			if !strings.Contains(rows["top"], "`"+name+"`") {
				t.Errorf("the configuration table's top row lacks %s", name)
			}
			continue
		}
		row, ok := rows[name]
		if !ok {
			t.Errorf("the configuration table has no %s row", name)
			continue
		}
		for j := 0; j < f.Type.NumField(); j++ {
			key := strings.Split(f.Type.Field(j).Tag.Get("yaml"), ",")[0]
			if key != "" && key != "-" && !strings.Contains(row, "`"+key+"`") {
				t.Errorf("the configuration table's %s row lacks %s", name, key)
			}
		}
	}

	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goVersion == nil || !strings.Contains(readme, "Go "+string(goVersion[1])) {
		t.Errorf("the README does not name go.mod's Go version %s", goVersion)
	}
}
