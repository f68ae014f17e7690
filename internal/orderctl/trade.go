package orderctl

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/order"
	"github.com/orderpipe/orderpipe/internal/postgres"
)

// TradeAccountRow is one trade account in `orderctl trade-accounts list --output json`.
type TradeAccountRow struct {
	CustomerID string    `json:"customer_id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
}

func (e *env) tradeAccountsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trade-accounts",
		Short: "Add, list and remove trade accounts (their orders use the priority lane)",
		Long: "A trade account is a business customer (a garage, a fleet, a reseller) whose orders travel on\n" +
			"orders.placed.priority, drained first, like express orders, whatever their shipping. It is named by\n" +
			"the customer_id the checkout sends. api instances pick changes up within CATALOG_REFRESH_INTERVAL.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("trade-accounts: want a subcommand: add, list or remove")
		},
	}
	var name string
	add := &cobra.Command{
		Use:   "add CUSTOMER_ID [--name NAME]",
		Short: "Make a customer a trade account (again: change its name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if order.CustomerIDProblem(id) != "" {
				return usageErr("CUSTOMER_ID: want 1 to %d characters, got %d", order.MaxCustomerIDLen, utf8.RuneCountInString(id))
			}
			if len(name) > 200 {
				return usageErr("--name: want at most 200 characters, got %d", len(name))
			}
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			a, err := postgres.NewTradeAccountStore(pool).Add(cmd.Context(), id, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "trade account %s (%s) since %s\n", a.CustomerID, orDash(a.Name), a.CreatedAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "the business's name (shown in lists)")
	var output string
	list := &cobra.Command{
		Use:   "list [--output table|json]",
		Short: "List trade accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			as, err := postgres.NewTradeAccountStore(pool).All(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				rows := make([]TradeAccountRow, 0, len(as))
				for _, a := range as {
					rows = append(rows, TradeAccountRow{CustomerID: a.CustomerID, Name: a.Name, CreatedAt: a.CreatedAt.UTC()})
				}
				return writeJSON(e.stdout, rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CUSTOMER\tNAME\tSINCE")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", a.CustomerID, orDash(a.Name), a.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&output, "output", "table", "table or json")
	remove := &cobra.Command{
		Use:   "remove CUSTOMER_ID",
		Short: "End a trade account (orders already placed keep their lane)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			err = postgres.NewTradeAccountStore(pool).Remove(cmd.Context(), args[0])
			if errors.Is(err, postgres.ErrNotFound) {
				return &exitError{code: ExitError, err: fmt.Errorf("%s has no trade account", args[0])}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "removed trade account", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
