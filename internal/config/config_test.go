package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type Section struct {
	Port  int           `env:"T_PORT" envDefault:"8080" help:"port"`
	Wait  time.Duration `env:"T_WAIT" envDefault:"2s" help:"wait"`
	Token string        `env:"T_TOKEN" help:"token"`
}

func (s *Section) Validate() error {
	if s.Port > 65535 {
		return Errorf("T_PORT", "want at most 65535, got %d", s.Port)
	}
	return nil
}

type appConfig struct {
	Section
}

func TestLoadNamesTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"T_PORT": "eighty"}, `T_PORT: invalid value "eighty"`},
		{map[string]string{"T_WAIT": "soon"}, `T_WAIT: invalid value "soon"`},
		{map[string]string{"T_PORT": "70000"}, "T_PORT: want at most 65535, got 70000"},
	}
	for _, tt := range tests {
		var c appConfig
		err := Load(&c, func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err = %v, want it to contain %q", tt.env, err, tt.want)
		}
	}
	var c appConfig
	if err := Load(&c, func(k string) string { return map[string]string{"T_TOKEN": "x"}[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Port != 8080 || c.Wait != 2*time.Second || c.Token != "x" {
		t.Fatalf("got %+v, want defaults and the token", c)
	}
}

func TestUsageAndUndocumented(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := Usage(&b, "app", "does things", &appConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"T_PORT", "8080", "T_WAIT", "2s", `""`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	doc := "| `T_PORT` | `8080` | port |\n| `T_WAIT` | `5s` | wait |\n"
	got, err := Undocumented(doc, &appConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"T_WAIT: row does not show the default `2s`", "T_TOKEN: no row"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !WantsHelp([]string{"-h"}) || WantsHelp([]string{"serve"}) {
		t.Fatal("WantsHelp")
	}
}

type named struct {
	First  Section
	Second struct {
		Name string `env:"T_NAME" envDefault:"x"`
	}
}

// Sections may also be named fields (two sections of the same type name cannot both be
// embedded): they are parsed, listed and validated like embedded ones.
func TestNamedSections(t *testing.T) {
	t.Parallel()
	var c named
	env := map[string]string{"T_PORT": "9000", "T_NAME": "y"}
	if err := Load(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.First.Port != 9000 || c.Second.Name != "y" {
		t.Fatalf("got %+v", c)
	}
	env["T_PORT"] = "99999"
	if err := Load(&c, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "T_PORT") {
		t.Fatalf("named section not validated: %v", err)
	}
}

// TestSettingFromFile: NAME_FILE gives a setting's value from a file (the Docker and Kubernetes
// secrets convention), one trailing newline dropped; both set, a missing file or an empty file
// is an error naming the variable.
func TestSettingFromFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("token", "s3cret-token\n")
	port := write("port", "9090")
	var c appConfig
	env := map[string]string{"T_TOKEN_FILE": secret, "T_PORT_FILE": port}
	if err := Load(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.Token != "s3cret-token" || c.Port != 9090 {
		t.Fatalf("got token %q port %d, want the files' s3cret-token and 9090", c.Token, c.Port)
	}
	eff, err := EffectiveSettings(&appConfig{}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range eff {
		if e.Name == "T_PORT" && (e.Value != "9090" || e.Source != "file") {
			t.Errorf("effective T_PORT = %q from %q, want 9090 from file", e.Value, e.Source)
		}
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"T_TOKEN": "x", "T_TOKEN_FILE": secret}, "T_TOKEN and T_TOKEN_FILE are both set"},
		{map[string]string{"T_TOKEN_FILE": filepath.Join(dir, "nosuch")}, "T_TOKEN_FILE: open"},
		{map[string]string{"T_TOKEN_FILE": write("empty", "\n")}, "T_TOKEN_FILE: " + filepath.Join(dir, "empty") + " is empty"},
		{map[string]string{"T_PORT_FILE": write("bad", "eighty\n")}, `T_PORT: invalid value "eighty"`},
	} {
		var c appConfig
		err := Load(&c, func(k string) string { return tt.env[k] })
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("env %v: err = %v, want it to contain %q", tt.env, err, tt.want)
		}
	}
}
