package orderctl

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/api"
	"github.com/orderpipe/orderpipe/internal/config"
	"github.com/orderpipe/orderpipe/internal/inventorysync"
	"github.com/orderpipe/orderpipe/internal/notifier"
	"github.com/orderpipe/orderpipe/internal/orderworker"
)

// services lists every process with the settings struct it loads, in the order `env` prints them.
func services() []struct {
	name string
	cfg  any
} {
	return []struct {
		name string
		cfg  any
	}{
		{"api", &api.Config{}},
		{"order-worker", &orderworker.Config{}},
		{"inventory-sync", &inventorysync.Config{}},
		{"notifier", &notifier.Config{}},
		{"orderctl", &Config{}},
	}
}

// envRow is one variable of one service, as `env --output json` prints it.
type envRow struct {
	Service  string `json:"service"`
	Variable string `json:"variable"`
	Default  string `json:"default"`
	Value    string `json:"value,omitempty"`  // with --effective; secrets masked
	Source   string `json:"source,omitempty"` // with --effective: env or default
	Meaning  string `json:"meaning"`
}

func (e *env) envCmd() *cobra.Command {
	var service, output string
	var effective bool
	cmd := &cobra.Command{
		Use:   "env [--service NAME] [--effective] [--output table|json]",
		Short: "List every environment variable each service and orderctl read, with defaults (and values in force)",
		Long: "Lists, per process (api, order-worker, inventory-sync, notifier, orderctl), every environment\n" +
			"variable it reads with its default and meaning. --effective adds the value in force in this\n" +
			"environment and where it came from (env or default); secrets (REDIS_PASSWORD, SMTP_PASSWORD)\n" +
			"show as ******** and a URL's password as xxxxx.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			var names []string
			var rows []envRow
			for _, s := range services() {
				names = append(names, s.name)
				if service != "" && service != s.name {
					continue
				}
				settings, err := config.EffectiveSettings(s.cfg, e.getenv)
				if err != nil {
					return err
				}
				for _, st := range settings {
					r := envRow{Service: s.name, Variable: st.Name, Default: config.Mask(st.Setting, st.Default), Meaning: st.Help}
					if effective {
						r.Value, r.Source = st.Value, st.Source
					}
					rows = append(rows, r)
				}
			}
			if service != "" && !slices.Contains(names, service) {
				return usageErr("--service: unknown service %q, want one of %s", service, strings.Join(names, ", "))
			}
			if output == "json" {
				return writeJSON(e.stdout, rows)
			}
			return writeEnvTable(e, rows, effective)
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "only this process: api, order-worker, inventory-sync, notifier or orderctl")
	cmd.Flags().BoolVar(&effective, "effective", false, "add the value in force in this environment (secrets masked) and its source")
	cmd.Flags().StringVar(&output, "output", "table", "table or json")
	return cmd
}

func writeEnvTable(e *env, rows []envRow, effective bool) error {
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	last := ""
	for _, r := range rows {
		if r.Service != last {
			if last != "" {
				fmt.Fprintln(tw)
			}
			last = r.Service
			fmt.Fprintf(tw, "# %s\n", r.Service)
			if effective {
				fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tVALUE\tSOURCE\tMEANING")
			} else {
				fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
			}
		}
		def := r.Default
		if def == "" {
			def = `""`
		}
		if effective {
			val := r.Value
			if val == "" {
				val = `""`
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Variable, def, val, r.Source, r.Meaning)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Variable, def, r.Meaning)
		}
	}
	return tw.Flush()
}
