package orderctl

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orderpipe/orderpipe/internal/postgres"
	"github.com/orderpipe/orderpipe/internal/redisstore"
)

// CatalogImportReport is what `orderctl catalog import --output json` prints.
type CatalogImportReport struct {
	File     string `json:"file"`
	Format   string `json:"format"`
	Products int    `json:"products"` // rows in the file
	Executed bool   `json:"executed"` // false for a dry run: nothing was changed
	// Errors are the invalid rows (file:line: field: problem); when there are any nothing is
	// imported and the counts below are zero.
	Errors    []string               `json:"errors,omitempty"`
	Inserted  []string               `json:"inserted"`
	Updated   []CatalogProductChange `json:"updated"`
	Unchanged int                    `json:"unchanged"`
	// StockSeeded are SKUs given their initial on_hand (they had no stock row); StockKept had one
	// and were left alone: stock moves through warehouse events (inventory.stock), not imports.
	StockSeeded []string `json:"stock_seeded"`
	StockKept   []string `json:"stock_kept"`
	// RedisSeeded counts SKUs whose Redis availability was loaded (--execute).
	RedisSeeded int `json:"redis_seeded"`
}

// CatalogProductChange is an updated product with its changed fields ("price_minor: 4990 -> 5290").
type CatalogProductChange struct {
	SKU     string   `json:"sku"`
	Changes []string `json:"changes"`
}

var (
	catalogSKU      = regexp.MustCompile(`^[A-Z0-9][A-Z0-9-]{2,39}$`)
	catalogCurrency = regexp.MustCompile(`^[A-Z]{3}$`)
)

// catalogColumns are the CSV columns and JSON fields of an import file; stock and active are
// optional.
var catalogColumns = []string{"sku", "name", "category", "brand", "price_minor", "currency", "active", "stock"}

// catalogMaxErrors bounds the errors reported for one file.
const catalogMaxErrors = 50

// catalogRow is one product of an import file, with where it was.
type catalogRow struct {
	line    int
	product postgres.Product
	stock   *int64
}

func (e *env) catalogCmd() *cobra.Command {
	cat := &cobra.Command{
		Use:   "catalog",
		Short: "Import products (and initial stock) into the catalog",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("catalog: want a subcommand: import")
		},
	}
	var format, output string
	var execute bool
	imp := &cobra.Command{
		Use:   "import FILE [--format csv|json] [--execute] [--output table|json]",
		Short: "Upsert products from a CSV or JSON file, with optional initial stock; dry run by default",
		Long: "Reads products from FILE (format from the extension .csv or .json, or --format) and upserts\n" +
			"them by SKU: new SKUs are inserted, changed ones updated, identical ones left alone.\n" +
			"\n" +
			"CSV: a header row naming the columns, in any order: sku, name, category, brand, price_minor,\n" +
			"currency (required), active (true/false, default true) and stock (optional). JSON: an array of\n" +
			"objects with the same fields; unknown fields are errors. price_minor is an integer amount in\n" +
			"minor units (cents), currency an ISO 4217 code; SKUs look like BRK-PAD-1042.\n" +
			"\n" +
			"stock is the initial on-hand of a SKU that has no stock yet (Postgres, and the Redis\n" +
			"availability): a SKU with stock keeps it, because stock moves through warehouse events.\n" +
			"\n" +
			"Every row is checked first; any invalid row (reported as file:line: field: problem) stops the\n" +
			"import with exit code 2 and nothing changes. Without --execute nothing changes either: it\n" +
			"prints what would be inserted, updated and left unchanged, computed by running the import in a\n" +
			"transaction that is rolled back. --execute applies it in one transaction: all rows or none.\n" +
			"api instances see the changes within CATALOG_REFRESH_INTERVAL.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("want exactly one FILE argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			file := args[0]
			f := format
			if f == "" {
				switch strings.ToLower(filepath.Ext(file)) {
				case ".csv":
					f = "csv"
				case ".json":
					f = "json"
				default:
					return usageErr("%s: cannot tell the format from the extension %q: pass --format csv or --format json", file, filepath.Ext(file))
				}
			}
			if f != "csv" && f != "json" {
				return usageErr("--format: want csv or json, got %q", f)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return usageErr("read %s: %v", file, err)
			}
			rep := CatalogImportReport{File: file, Format: f, Inserted: []string{}, Updated: []CatalogProductChange{},
				StockSeeded: []string{}, StockKept: []string{}}
			rows, total, errs := parseCatalog(file, f, data)
			rep.Products = total
			if len(errs) > 0 {
				rep.Errors = errs
				if err := e.writeCatalogReport(rep, output); err != nil {
					return err
				}
				return usageErr("%s: %d invalid rows: nothing imported", file, len(errs))
			}
			return e.importCatalog(cmd, rep, rows, execute, output)
		},
	}
	imp.Flags().StringVar(&format, "format", "", "csv or json (default: from the file's extension)")
	imp.Flags().BoolVar(&execute, "execute", false, "apply the import in one transaction (default: dry run)")
	imp.Flags().StringVar(&output, "output", "table", "table or json")
	cat.AddCommand(imp)
	return cat
}

func (e *env) importCatalog(cmd *cobra.Command, rep CatalogImportReport, rows []catalogRow, execute bool, output string) error {
	ctx := cmd.Context()
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	products := make([]postgres.Product, len(rows))
	onHand := map[string]int64{}
	for i, r := range rows {
		products[i] = r.product
		if r.stock != nil {
			onHand[r.product.SKU] = *r.stock
		}
	}
	res, err := postgres.NewCatalogStore(pool).Import(ctx, products, onHand, execute)
	if err != nil {
		return err
	}
	rep.Executed = execute
	rep.Inserted = append(rep.Inserted, res.Inserted...)
	for _, u := range res.Updated {
		c := CatalogProductChange{SKU: u.SKU}
		for _, f := range u.Fields {
			c.Changes = append(c.Changes, fmt.Sprintf("%s: %s -> %s", f.Field, f.Old, f.New))
		}
		rep.Updated = append(rep.Updated, c)
	}
	rep.Unchanged = len(res.Unchanged)
	rep.StockSeeded = append(rep.StockSeeded, res.StockSeeded...)
	rep.StockKept = append(rep.StockKept, res.StockKept...)
	var redisErr error
	if execute && len(res.StockSeeded) > 0 {
		// A new SKU has nothing allocated or held: its availability is its on_hand.
		atp := make(map[string]int64, len(res.StockSeeded))
		for _, sku := range res.StockSeeded {
			atp[sku] = onHand[sku]
		}
		rdb := redisstore.NewClient(e.cfg.Redis)
		defer rdb.Close()
		rep.RedisSeeded, redisErr = redisstore.New(rdb, e.cfg.RedisKeyPrefix).SeedStock(ctx, atp)
	}
	if err := e.writeCatalogReport(rep, output); err != nil {
		return err
	}
	if redisErr != nil {
		return fmt.Errorf("catalog imported, but Redis availability of the new stock was not loaded (run orderctl reconcile --repair): %w", redisErr)
	}
	return nil
}

func (e *env) writeCatalogReport(rep CatalogImportReport, output string) error {
	if output == "json" {
		return writeJSON(e.stdout, rep)
	}
	w := e.stdout
	fmt.Fprintf(w, "catalog import %s (%s): %d products\n", rep.File, rep.Format, rep.Products)
	if len(rep.Errors) > 0 {
		for _, msg := range rep.Errors {
			fmt.Fprintln(w, msg)
		}
		_, err := fmt.Fprintln(w, "invalid input: nothing imported")
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(rep.Inserted)+len(rep.Updated) > 0 {
		fmt.Fprintln(tw, "ACTION\tSKU\tCHANGES")
	}
	for _, sku := range rep.Inserted {
		fmt.Fprintf(tw, "insert\t%s\t-\n", sku)
	}
	for _, u := range rep.Updated {
		fmt.Fprintf(tw, "update\t%s\t%s\n", u.SKU, strings.Join(u.Changes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := [3]string{"to insert", "to update", "unchanged"}
	if rep.Executed {
		verb = [3]string{"inserted", "updated", "unchanged"}
	}
	fmt.Fprintf(w, "products: %d %s, %d %s, %d %s\n", len(rep.Inserted), verb[0], len(rep.Updated), verb[1], rep.Unchanged, verb[2])
	fmt.Fprintf(w, "stock: initial stock for %d SKUs; %d SKUs with stock already left unchanged\n", len(rep.StockSeeded), len(rep.StockKept))
	if rep.Executed {
		_, err := fmt.Fprintf(w, "applied in one transaction; redis availability loaded for %d SKUs\n", rep.RedisSeeded)
		return err
	}
	_, err := fmt.Fprintln(w, "dry run: nothing changed; pass --execute to apply in one transaction")
	return err
}

// catalogErr is a problem of an import file at a line.
type catalogErr struct {
	line int
	msg  string // "file:line: field: problem"
}

// catalogErrs collects the problems of one file.
type catalogErrs struct {
	file string
	list []catalogErr
}

func (c *catalogErrs) add(line int, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	c.list = append(c.list, catalogErr{line: line, msg: fmt.Sprintf("%s:%d: %s", c.file, line, msg)})
}

// parseCatalog reads and validates every row of an import file: the valid rows, how many rows
// it had, and the problems sorted by line (each names file:line and field).
func parseCatalog(file, format string, data []byte) ([]catalogRow, int, []string) {
	errs := &catalogErrs{file: file}
	var rows []catalogRow
	var total int
	if format == "csv" {
		rows, total = parseCatalogCSV(data, errs)
	} else {
		rows, total = parseCatalogJSON(data, errs)
	}
	first := map[string]int{}
	for _, r := range rows {
		if l, dup := first[r.product.SKU]; dup {
			errs.add(r.line, "sku", "%s is also on line %d", r.product.SKU, l)
			continue
		}
		first[r.product.SKU] = r.line
	}
	if total == 0 && len(errs.list) == 0 {
		errs.add(1, "", "no products")
	}
	slices.SortStableFunc(errs.list, func(a, b catalogErr) int { return a.line - b.line })
	var out []string
	for i, e := range errs.list {
		if i == catalogMaxErrors {
			out = append(out, fmt.Sprintf("%s: %d more problems", file, len(errs.list)-catalogMaxErrors))
			break
		}
		out = append(out, e.msg)
	}
	return rows, total, out
}

// catalogFields are the values of one row as text, by column; absent columns are missing.
type catalogFields map[string]string

// row validates the fields of one row, adding each problem to errs.
func (f catalogFields) row(line int, errs *catalogErrs) (catalogRow, bool) {
	bad := func(field, format string, args ...any) { errs.add(line, field, format, args...) }
	n := len(errs.list)
	r := catalogRow{line: line, product: postgres.Product{Active: true}}
	p := &r.product
	p.SKU = f["sku"]
	if !catalogSKU.MatchString(p.SKU) {
		bad("sku", "want an upper-case SKU such as BRK-PAD-1042, got %q", p.SKU)
	}
	for _, c := range []struct {
		name string
		dst  *string
	}{{"name", &p.Name}, {"category", &p.Category}, {"brand", &p.Brand}} {
		*c.dst = f[c.name]
		if strings.TrimSpace(*c.dst) == "" || len(*c.dst) > 200 {
			bad(c.name, "is required, at most 200 characters")
		}
	}
	price, err := strconv.ParseInt(f["price_minor"], 10, 64)
	if err != nil || price < 1 {
		bad("price_minor", "want a positive integer amount in minor units (cents), got %q", f["price_minor"])
	}
	p.PriceMinor = price
	p.Currency = f["currency"]
	if !catalogCurrency.MatchString(p.Currency) {
		bad("currency", "want an ISO 4217 code such as EUR, got %q", p.Currency)
	}
	if v, ok := f["active"]; ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("active", "want true or false, got %q", v)
		}
		p.Active = b
	}
	if v, ok := f["stock"]; ok && v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 {
			bad("stock", "want a non-negative integer (units on hand), got %q", v)
		}
		r.stock = &s
	}
	return r, len(errs.list) == n
}

func parseCatalogCSV(data []byte, errs *catalogErrs) ([]catalogRow, int) {
	rd := csv.NewReader(bytes.NewReader(data))
	rd.TrimLeadingSpace = true
	header, err := rd.Read()
	if err != nil {
		errs.add(1, "header", "%v", csvErr(err))
		return nil, 0
	}
	cols := make([]string, len(header))
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch {
		case !slices.Contains(catalogColumns, h):
			errs.add(1, h, "unknown column (want %s)", strings.Join(catalogColumns, ", "))
		case slices.Contains(cols, h):
			errs.add(1, h, "column given twice")
		}
		cols[i] = h
	}
	for _, c := range catalogColumns[:6] {
		if !slices.Contains(cols, c) {
			errs.add(1, c, "required column missing")
		}
	}
	if len(errs.list) > 0 {
		return nil, 0
	}
	var rows []catalogRow
	total := 0
	for len(errs.list) <= catalogMaxErrors {
		rec, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		total++
		if err != nil {
			line := 0
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.StartLine
			}
			errs.add(line, "", "%v", csvErr(err))
			continue
		}
		line, _ := rd.FieldPos(0)
		f := catalogFields{}
		for i, v := range rec {
			f[cols[i]] = strings.TrimSpace(v)
		}
		if r, ok := f.row(line, errs); ok {
			rows = append(rows, r)
		}
	}
	return rows, total
}

// csvErr drops the position encoding/csv puts in its errors (the caller prints file:line).
func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// catalogJSON is one product of a JSON import file; pointers tell absent from zero.
type catalogJSON struct {
	SKU        *string `json:"sku"`
	Name       *string `json:"name"`
	Category   *string `json:"category"`
	Brand      *string `json:"brand"`
	PriceMinor *int64  `json:"price_minor"`
	Currency   *string `json:"currency"`
	Active     *bool   `json:"active"`
	Stock      *int64  `json:"stock"`
}

func parseCatalogJSON(data []byte, errs *catalogErrs) ([]catalogRow, int) {
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '[' {
		errs.add(lineAt(dec.InputOffset()), "", "want a JSON array of products")
		return nil, 0
	}
	var rows []catalogRow
	total := 0
	for dec.More() && len(errs.list) <= catalogMaxErrors {
		// The element starts at the first non-blank, non-comma byte after the offset.
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[off]) >= 0 {
			off++
		}
		line := lineAt(off)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			errs.add(line, "", "%v", err)
			return rows, total
		}
		total++
		var in catalogJSON
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		if err := strict.Decode(&in); err != nil {
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &te) && te.Field != "":
				errs.add(line, te.Field, "want %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
			case strings.HasPrefix(err.Error(), "json: unknown field "):
				errs.add(line, strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field (want %s)", strings.Join(catalogColumns, ", "))
			default:
				errs.add(line, "", "%v", err)
			}
			continue
		}
		f := catalogFields{}
		str := func(k string, v *string) {
			if v != nil {
				f[k] = *v
			}
		}
		str("sku", in.SKU)
		str("name", in.Name)
		str("category", in.Category)
		str("brand", in.Brand)
		str("currency", in.Currency)
		if in.PriceMinor != nil {
			f["price_minor"] = strconv.FormatInt(*in.PriceMinor, 10)
		}
		if in.Active != nil {
			f["active"] = strconv.FormatBool(*in.Active)
		}
		if in.Stock != nil {
			f["stock"] = strconv.FormatInt(*in.Stock, 10)
		}
		if r, ok := f.row(line, errs); ok {
			rows = append(rows, r)
		}
	}
	if len(errs.list) <= catalogMaxErrors {
		if _, err := dec.Token(); err != nil {
			errs.add(lineAt(dec.InputOffset()), "", "%v", err)
		}
	}
	return rows, total
}

// jsonKind says in words what a JSON field of Go kind k holds.
func jsonKind(k string) string {
	switch k {
	case "int64":
		return "an integer"
	case "bool":
		return "true or false"
	}
	return "a " + k
}
