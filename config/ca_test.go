package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadCAFile(t *testing.T) {
	dir := t.TempDir()
	ca := writeCA(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		wantPool bool
		wantErr  error
	}{
		{"empty path: the system's roots", "", false, nil},
		{"a CA", ca, true, nil},
		{"no certificate", garbage, false, ErrNoCertificate},
		{"missing", filepath.Join(dir, "missing.pem"), false, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadCAFile(tt.path)
			if (pool != nil) != tt.wantPool {
				t.Errorf("pool = %v, want one: %v", pool, tt.wantPool)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
