package orderctl

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

func (e *env) pool(ctx context.Context) (*pgxpool.Pool, error) {
	return postgres.Open(ctx, e.cfg.DatabaseURL, 4)
}

// KeyRow is one API key in `orderctl keys list --output json` (never its secret).
type KeyRow struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// MigrationRow is one migration in `orderctl migrate --status --output json`.
type MigrationRow struct {
	Version int64  `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
}

func (e *env) migrateCmd() *cobra.Command {
	var status bool
	var output string
	cmd := &cobra.Command{
		Use:   "migrate [--status [--output table|json]]",
		Short: "Apply the embedded Postgres migrations (safe to run from several replicas at once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if output == "json" && !status {
				return usageErr("--output json goes with --status (applying migrations prints what it applied)")
			}
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if status {
				ms, err := postgres.MigrationStatus(cmd.Context(), pool)
				if err != nil {
					return err
				}
				if output == "json" {
					rows := make([]MigrationRow, 0, len(ms))
					for _, m := range ms {
						rows = append(rows, MigrationRow{Version: m.Version, Name: m.Name, Applied: m.Applied})
					}
					return writeJSON(e.stdout, rows)
				}
				tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
				for _, m := range ms {
					fmt.Fprintf(tw, "%d\t%s\t%v\n", m.Version, m.Name, m.Applied)
				}
				return tw.Flush()
			}
			applied, err := postgres.Migrate(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(e.stdout, "migrations: up to date")
			}
			for _, a := range applied {
				fmt.Fprintln(e.stdout, "applied", a)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "list migrations and whether each is applied, change nothing")
	cmd.Flags().StringVar(&output, "output", "table", "with --status: table or json")
	return cmd
}

func (e *env) keysCmd() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("keys: want a subcommand: create, list or revoke")
		},
	}
	var name string
	var scopes []string
	create := &cobra.Command{
		Use:   "create --name NAME --scopes SCOPE[,SCOPE]",
		Short: "Create an API key and print it once (only its hash is stored)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErr("--name is required")
			}
			if err := auth.ValidateScopes(scopes); err != nil {
				return usageErr("--scopes: %v", err)
			}
			token, err := e.createKey(cmd.Context(), name, scopes)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, token)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "who the key is for (shown in lists and logs)")
	create.Flags().StringSliceVar(&scopes, "scopes", nil, "comma-separated scopes: "+fmt.Sprint(auth.AllScopes))
	var listOutput string
	list := &cobra.Command{
		Use:   "list [--output table|json]",
		Short: "List API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(listOutput); err != nil {
				return err
			}
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			ks, err := postgres.NewKeyStore(pool).All(cmd.Context())
			if err != nil {
				return err
			}
			if listOutput == "json" {
				rows := make([]KeyRow, 0, len(ks))
				for _, k := range ks {
					rows = append(rows, KeyRow{ID: k.ID, Name: k.Name, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC(), RevokedAt: k.RevokedAt})
				}
				return writeJSON(e.stdout, rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tREVOKED")
			for _, k := range ks {
				revoked := "-"
				if k.RevokedAt != nil {
					revoked = k.RevokedAt.UTC().Format("2006-01-02T15:04:05Z")
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", k.ID, k.Name, k.Scopes, k.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), revoked)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&listOutput, "output", "table", "table or json")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key (api instances drop it within CATALOG_REFRESH_INTERVAL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := postgres.NewKeyStore(pool).Revoke(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "revoked", args[0])
			return nil
		},
	}
	keys.AddCommand(create, list, revoke)
	return keys
}

func (e *env) createKey(ctx context.Context, name string, scopes []string) (string, error) {
	token, k, err := auth.Generate(name, scopes)
	if err != nil {
		return "", err
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if err := postgres.NewKeyStore(pool).Create(ctx, postgres.APIKey{ID: k.ID, Name: k.Name, SecretHash: k.SecretHash, Scopes: k.Scopes}); err != nil {
		return "", err
	}
	return token, nil
}
