package orderctl

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/auth"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

func (e *env) pool(ctx context.Context) (*pgxpool.Pool, error) {
	return postgres.Open(ctx, e.cfg.DatabaseURL, 4)
}

func (e *env) migrateCmd() *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded Postgres migrations (safe to run from several replicas at once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	return cmd
}

func (e *env) keysCmd() *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "Create, list and revoke API keys"}
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
	list := &cobra.Command{
		Use:   "list",
		Short: "List API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			ks, err := postgres.NewKeyStore(pool).All(cmd.Context())
			if err != nil {
				return err
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
