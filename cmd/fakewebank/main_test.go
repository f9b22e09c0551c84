package main

import (
	"maps"
	"strings"
	"testing"
)

func TestAppFlag(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		want    map[string]string
		wantErr bool
	}{
		{name: "none", want: map[string]string{}},
		{name: "two", flags: []string{"IDA1:s1", "IDA2:s:2"}, want: map[string]string{"IDA1": "s1", "IDA2": "s:2"}},
		{name: "no colon", flags: []string{"IDA1secret"}, wantErr: true},
		{name: "empty id", flags: []string{":secret"}, wantErr: true},
		{name: "empty secret", flags: []string{"IDA1:"}, wantErr: true},
		{name: "repeated id", flags: []string{"IDA1:secret", "IDA1:other"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a appFlag
			for _, f := range tt.flags {
				if err := a.Set(f); err != nil {
					t.Fatalf("Set(%q) = %v", f, err)
				}
			}
			got, err := a.apps()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("apps() = %v, want an error", got)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(a.String(), "secret") {
					t.Errorf("error %q or String %q shows a secret", err, a.String())
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Errorf("apps() = %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}
