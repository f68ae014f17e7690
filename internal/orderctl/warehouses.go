package orderctl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/postgres"
)

// WarehouseRow is one warehouse in `orderctl warehouses list --output json` (its secret is never
// shown after `add`).
type WarehouseRow struct {
	WarehouseID string    `json:"warehouse_id"`
	Name        string    `json:"name"`
	Signed      bool      `json:"signed"`
	CreatedAt   time.Time `json:"created_at"`
}

// warehouseIDPattern is the warehouses table's check on ids (and the event schemas').
var warehouseIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// newWarehouseSecret makes a webhook secret: 32 random bytes, base64url, the text itself being
// the HMAC key (what `openssl dgst -hmac "$SECRET"` uses).
func newWarehouseSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate webhook secret: %w", err)
	}
	return []byte("whsec_" + base64.RawURLEncoding.EncodeToString(b)), nil
}

func (e *env) warehousesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "warehouses",
		Short: "Register, list and unregister the warehouses that may post stock events to the webhook",
		Long: "Only registered warehouses may post to POST /v1/warehouse/stock (others get 403 unknown-warehouse).\n" +
			"A warehouse is registered with a webhook secret (generated and printed once by add, or read from\n" +
			"--secret-file) and must sign its requests with it, or --unsigned. api instances pick changes up\n" +
			"within CATALOG_REFRESH_INTERVAL. Warehouses publishing to Kafka directly are authorized by Kafka ACLs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("warehouses: want a subcommand: add, list or remove")
		},
	}
	var (
		name, secretFile  string
		unsigned, replace bool
	)
	add := &cobra.Command{
		Use:   "add WAREHOUSE_ID [--name NAME] [--secret-file FILE | --unsigned] [--replace]",
		Short: "Register a warehouse; prints its generated webhook secret once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if !warehouseIDPattern.MatchString(id) {
				return usageErr("WAREHOUSE_ID: want 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got %q", id)
			}
			if len(name) > 200 {
				return usageErr("--name: want at most 200 characters, got %d", len(name))
			}
			if unsigned && secretFile != "" {
				return usageErr("--unsigned and --secret-file: want at most one")
			}
			var secret []byte
			generated := false
			switch {
			case unsigned:
			case secretFile != "":
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return usageErr("--secret-file: %v", err)
				}
				if secret = bytes.TrimRight(b, "\r\n"); len(secret) < 16 {
					return usageErr("--secret-file: want a secret of at least 16 bytes, got %d", len(secret))
				}
			default:
				s, err := newWarehouseSecret()
				if err != nil {
					return err
				}
				secret, generated = s, true
			}
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := registerWarehouse(cmd.Context(), postgres.NewInventoryStore(pool), postgres.Warehouse{ID: id, Name: name, Secret: secret}, replace); err != nil {
				return err
			}
			switch {
			case generated:
				fmt.Fprintf(e.stdout, "warehouse %s registered; its webhook secret (shown once, sign every request with it):\n%s\n", id, secret)
			case secret != nil:
				fmt.Fprintf(e.stdout, "warehouse %s registered with the secret from %s\n", id, secretFile)
			default:
				fmt.Fprintf(e.stdout, "warehouse %s registered, unsigned: any key with inventory:write may post for it\n", id)
			}
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "the warehouse's name (shown in lists)")
	add.Flags().StringVar(&secretFile, "secret-file", "", "read the webhook secret (at least 16 bytes) from this file instead of generating one")
	add.Flags().BoolVar(&unsigned, "unsigned", false, "register without a secret: requests need no signature (not recommended)")
	add.Flags().BoolVar(&replace, "replace", false, "replace the name and secret of a registered warehouse (the old secret stops working within CATALOG_REFRESH_INTERVAL)")
	var output string
	list := &cobra.Command{
		Use:   "list [--output table|json]",
		Short: "List registered warehouses (never their secrets)",
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
			ws, err := postgres.NewInventoryStore(pool).Warehouses(cmd.Context())
			if err != nil {
				return err
			}
			rows := make([]WarehouseRow, 0, len(ws))
			for _, w := range ws {
				rows = append(rows, WarehouseRow{WarehouseID: w.ID, Name: w.Name, Signed: w.Secret != nil, CreatedAt: w.CreatedAt.UTC()})
			}
			if output == "json" {
				return writeJSON(e.stdout, rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WAREHOUSE\tNAME\tSIGNED\tSINCE")
			for _, r := range rows {
				signed := "no"
				if r.Signed {
					signed = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.WarehouseID, orDash(r.Name), signed, r.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&output, "output", "table", "table or json")
	remove := &cobra.Command{
		Use:   "remove WAREHOUSE_ID",
		Short: "Unregister a warehouse (its stock stays; its webhook posts are refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, err := e.pool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			err = postgres.NewInventoryStore(pool).RemoveWarehouse(cmd.Context(), args[0])
			if errors.Is(err, postgres.ErrNotFound) {
				return &exitError{code: ExitError, err: fmt.Errorf("warehouse %s is not registered", args[0])}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "removed warehouse", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

// registerWarehouse adds w, or replaces a registered one when replace is set.
func registerWarehouse(ctx context.Context, s *postgres.InventoryStore, w postgres.Warehouse, replace bool) error {
	if replace {
		return s.PutWarehouse(ctx, w)
	}
	_, err := s.AddWarehouse(ctx, w)
	if errors.Is(err, postgres.ErrConflict) {
		return &exitError{code: ExitError, err: fmt.Errorf("warehouse %s is registered already; --replace changes its name and secret", w.ID)}
	}
	return err
}
