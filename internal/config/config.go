// Package config loads a process's settings from environment variables (12-factor), prints them
// for -h, and names the variable at fault when a value is bad.
//
// A settings struct tags every field with `env:"NAME"`, `envDefault:"..."` and `help:"..."`.
// Parsing is done by github.com/caarlos0/env; this package adds what an operator needs on top:
// one error message per bad variable that names it, and a usage listing.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"
)

// Validator is implemented by settings structs (or their embedded sections) that check
// relations between values after parsing. Errors should come from Errorf so they name the
// variable.
type Validator interface {
	Validate() error
}

// Setting describes one environment variable of a settings struct. Secret settings (tagged
// `secret:"true"`) are never printed with their value.
type Setting struct {
	Name    string
	Default string
	Help    string
	Secret  bool
}

// Load fills cfg (a pointer to a struct) from getenv. A setting may instead be given in a file
// named by NAME_FILE (see FileSuffix). Unset variables take their defaults. It
// then calls Validate on every embedded section that implements Validator. Every
// problem is reported with the variable's name.
func Load(cfg any, getenv func(string) string) error {
	settings, fields, err := describe(cfg)
	if err != nil {
		return err
	}
	environ := make(map[string]string, len(settings))
	var problems []string
	for _, s := range settings {
		v, _, err := lookup(s.Name, getenv)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if v != "" {
			environ[s.Name] = v
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: environ}); err != nil {
		return nameVariables(err, fields, environ)
	}
	return validate(reflect.ValueOf(cfg))
}

// Usage writes every setting of cfg with its variable, default and help text.
func Usage(w io.Writer, program, summary string, cfg any) error {
	settings, _, err := describe(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: %s\n\nEvery setting is an environment variable (or NAME_FILE, naming a file that holds it):\n\n", program, summary)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, def, s.Help)
	}
	return tw.Flush()
}

// Settings lists the environment variables cfg reads, in declaration order.
func Settings(cfg any) ([]Setting, error) {
	s, _, err := describe(cfg)
	return s, err
}

// FileSuffix names the variable that gives a setting's value in a file instead, the Docker and
// Kubernetes secrets convention: REDIS_PASSWORD_FILE=/run/secrets/redis holds REDIS_PASSWORD.
const FileSuffix = "_FILE"

// lookup returns the value of the setting name: from the variable itself, or read from the file
// that name+FileSuffix names (one trailing newline dropped), with where it came from ("env",
// "file", or "" when unset). Both set is an error, so a stale value never wins silently.
func lookup(name string, getenv func(string) string) (value, source string, err error) {
	v, path := getenv(name), getenv(name+FileSuffix)
	switch {
	case v != "" && path != "":
		return "", "", fmt.Errorf("%s and %s%s are both set: give one", name, name, FileSuffix)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("%s%s: %w", name, FileSuffix, err)
		}
		v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", "", fmt.Errorf("%s%s: %s is empty", name, FileSuffix, path)
		}
		return v, "file", nil
	case v != "":
		return v, "env", nil
	}
	return "", "", nil
}

// Effective is a setting with the value in force for a given environment.
type Effective struct {
	Setting
	Value  string // masked: a secret shows as "********", a URL's password as "xxxxx"
	Source string // "env", "file" (from NAME_FILE) or "default"
}

// EffectiveSettings lists the settings of cfg with the values getenv gives them (their defaults
// where unset), masked for printing.
func EffectiveSettings(cfg any, getenv func(string) string) ([]Effective, error) {
	settings, _, err := describe(cfg)
	if err != nil {
		return nil, err
	}
	out := make([]Effective, 0, len(settings))
	for _, s := range settings {
		e := Effective{Setting: s, Value: s.Default, Source: "default"}
		v, source, err := lookup(s.Name, getenv)
		if err != nil {
			return nil, err
		}
		if v != "" {
			e.Value, e.Source = v, source
		}
		e.Value = Mask(s, e.Value)
		out = append(out, e)
	}
	return out, nil
}

// Mask hides a secret setting's value and the password in a URL-valued one.
func Mask(s Setting, value string) string {
	if value == "" {
		return value
	}
	if s.Secret {
		return "********"
	}
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return value
}

// Errorf builds a validation error that names the variable.
func Errorf(variable, format string, args ...any) error {
	return fmt.Errorf("%s: %s", variable, fmt.Sprintf(format, args...))
}

// Setup reads a process's command line and configuration: with -h (see WantsHelp) it prints
// cfg's usage and returns help true; any other argument is an error; otherwise cfg is loaded from
// getenv. noun names the process in the error, e.g. "the api".
func Setup(args []string, getenv func(string) string, stdout io.Writer, program, noun, summary string, cfg any) (help bool, err error) {
	if WantsHelp(args) {
		return true, Usage(stdout, program, summary, cfg)
	}
	if len(args) > 0 {
		return false, fmt.Errorf("unexpected arguments %q: %s is configured by environment variables (see -h)", args, noun)
	}
	if err := Load(cfg, getenv); err != nil {
		return false, fmt.Errorf("configuration: %w", err)
	}
	return false, nil
}

// WantsHelp reports whether args ask for the usage listing.
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			return true
		}
	}
	return false
}

func describe(cfg any) ([]Setting, map[string][]string, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("config: want a pointer to a struct, got %T", cfg)
	}
	var settings []Setting
	fields := map[string][]string{} // Go field name -> variables (TLS sections repeat field names)
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" && f.Type.String() != "time.Time" {
				walk(f.Type, prefix+f.Tag.Get("envPrefix"))
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			if name == "" {
				continue
			}
			name = prefix + name
			settings = append(settings, Setting{Name: name, Default: f.Tag.Get("envDefault"), Help: f.Tag.Get("help"), Secret: f.Tag.Get("secret") == "true"})
			fields[f.Name] = append(fields[f.Name], name)
		}
	}
	walk(v.Elem().Type(), "")
	return settings, fields, nil
}

// nameVariables rewrites the env library's errors, which name Go fields, into messages that
// name the environment variable and the value given.
func nameVariables(err error, fields map[string][]string, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			names := fields[pe.Name]
			name := strings.Join(names, " or ")
			for _, n := range names { // of fields sharing a Go name, the one set is at fault
				if _, ok := environ[n]; ok {
					name = n
					break
				}
			}
			msgs = append(msgs, fmt.Sprintf("%s: invalid value %q: %v", name, environ[name], pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// validate calls Validate on every section of the settings struct (embedded, or a named field
// when two sections share a type name). Sections are flat: they do not contain other sections,
// so each Validate runs exactly once.
func validate(v reflect.Value) error {
	var errs []error
	v = v.Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Struct || !f.IsExported() || f.Tag.Get("env") != "" {
			continue
		}
		if val, ok := v.Field(i).Addr().Interface().(Validator); ok {
			if err := val.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Undocumented lists the problems of a Markdown document's configuration tables for cfg: every
// variable cfg reads needs a table row starting with "| `NAME` |" that shows its default
// ("`default`", or "empty" for an empty one). Docs move with code; tests call this.
func Undocumented(markdown string, cfg any) ([]string, error) {
	settings, _, err := describe(cfg)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, s := range settings {
		i := strings.Index(markdown, "| `"+s.Name+"` |")
		if i < 0 {
			problems = append(problems, s.Name+": no row")
			continue
		}
		line := markdown[i:]
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "empty"
		}
		if !strings.Contains(line, def) {
			problems = append(problems, fmt.Sprintf("%s: row does not show the default %s", s.Name, def))
		}
	}
	return problems, nil
}
