package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vrsky/vrsky/runtime/connector"
)

// column is one column of the target table, as the catalogue describes it.
type column struct {
	name     string
	typeName string // format_type: "integer", "character varying(20)"
	kind     kind
	// insertable is false for generated columns and identity columns
	// GENERATED ALWAYS, which COPY cannot write.
	insertable bool
	// required: NOT NULL without a default (nor identity, nor generated),
	// so every row must carry a value.
	required bool
}

// table is the target table's catalogue entry.
type table struct {
	cols    []*column
	byName  map[string]*column
	uniques map[string][]string // usable unique index name → its columns (sorted)
}

// querier is what loadTable needs: a *pgx.Conn or a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// errNoTable: the table does not exist (or is not a table).
var errNoTable = errors.New("table not found")

// loadTable reads the columns and unique indexes of schema.name.
func loadTable(ctx context.Context, q querier, schema, name string) (*table, error) {
	qualified := pgx.Identifier{schema, name}.Sanitize()
	var oid *uint32
	var relkind *string
	err := q.QueryRow(ctx, `SELECT c.oid, c.relkind::text FROM pg_class c WHERE c.oid = to_regclass($1)`, qualified).Scan(&oid, &relkind)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && oid == nil) {
		return nil, fmt.Errorf("%s: %w", qualified, errNoTable)
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %s: %w", qualified, err)
	}
	if *relkind != "r" && *relkind != "p" {
		return nil, fmt.Errorf("%s is not a table (relkind %s): %w", qualified, *relkind, errNoTable)
	}
	rows, err := q.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END,
       a.attgenerated = '' AND a.attidentity <> 'a',
       a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", qualified, err)
	}
	t := &table{byName: map[string]*column{}}
	for rows.Next() {
		c := &column{}
		var base uint32
		if err := rows.Scan(&c.name, &c.typeName, &base, &c.insertable, &c.required); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of %s: %w", qualified, err)
		}
		c.kind = kindOf(base)
		t.cols = append(t.cols, c)
		t.byName[c.name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", qualified, err)
	}
	// Unique indexes ON CONFLICT can infer: not partial, no expressions,
	// not deferrable.
	rows, err = q.Query(ctx, `
SELECT i.indexrelid::regclass::text, array_agg(a.attname::text)
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey) AS k(attnum)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL
 GROUP BY i.indexrelid`, *oid)
	t.uniques = map[string][]string{}
	if err != nil {
		return nil, fmt.Errorf("read unique indexes of %s: %w", qualified, err)
	}
	for rows.Next() {
		var name string
		var cols []string
		if err := rows.Scan(&name, &cols); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read unique indexes of %s: %w", qualified, err)
		}
		sort.Strings(cols)
		// regclass text may be schema-qualified; errors name the bare index.
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = name[i+1:]
		}
		t.uniques[strings.Trim(name, `"`)] = cols
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read unique indexes of %s: %w", qualified, err)
	}
	return t, nil
}

// plan is how messages become rows of the table: the mapped columns, the
// JSON path of each, and the upsert key.
type plan struct {
	table   pgx.Identifier
	cols    []*column
	names   []string   // column names, as cols
	paths   [][]string // JSON path per column; nil for the id column
	idCol   int        // index of the id column in cols, or -1
	keys    []int      // upsert key columns, as indexes into cols
	upsert  bool
	skipped []string // columns left out of the automatic mapping, and why
	// idIndexes are the unique indexes on exactly the id column: a row
	// that collides there is a message delivered before.
	idIndexes map[string]bool
}

// newPlan maps cfg onto t. Its errors are *connector.SpecError naming the
// config field to fix.
func newPlan(cfg *Config, t *table) (*plan, error) {
	bad := func(field, format string, args ...any) error {
		return &connector.SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	p := &plan{table: pgx.Identifier{cfg.Schema, cfg.Table}, idCol: -1, upsert: cfg.Mode == ModeUpsert}
	add := func(field string, c *column, path []string) error {
		if !c.insertable {
			return bad(field, "column %q is generated or GENERATED ALWAYS AS IDENTITY; it cannot be written", c.name)
		}
		if c.kind == kUnsupported {
			return bad(field, "column %q has type %s, which the sink cannot write; supported: %s", c.name, c.typeName, supportedTypes)
		}
		p.cols = append(p.cols, c)
		p.names = append(p.names, c.name)
		p.paths = append(p.paths, path)
		return nil
	}
	if cfg.IDColumn != "" {
		c, ok := t.byName[cfg.IDColumn]
		if !ok {
			return nil, bad("id_column", "column %q does not exist in %s", cfg.IDColumn, p.table.Sanitize())
		}
		if c.kind != kText && c.kind != kUUID {
			return nil, bad("id_column", "column %q has type %s; the message id needs text, varchar or uuid", c.name, c.typeName)
		}
		if err := add("id_column", c, nil); err != nil {
			return nil, err
		}
		p.idCol = 0
		p.idIndexes = map[string]bool{}
		for name, cols := range t.uniques {
			if slices.Equal(cols, []string{c.name}) {
				p.idIndexes[name] = true
			}
		}
	}
	if len(cfg.Columns) > 0 {
		names := make([]string, 0, len(cfg.Columns))
		for n := range cfg.Columns {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c, ok := t.byName[n]
			if !ok {
				return nil, bad("columns."+n, "column %q does not exist in %s", n, p.table.Sanitize())
			}
			if err := add("columns."+n, c, strings.Split(cfg.Columns[n], ".")); err != nil {
				return nil, err
			}
		}
		for _, c := range t.cols {
			if _, mapped := cfg.Columns[c.name]; c.required && !mapped && c.name != cfg.IDColumn {
				return nil, bad("columns", "column %q is NOT NULL without a default: map a field to it", c.name)
			}
		}
	} else {
		for _, c := range t.cols {
			if c.name == cfg.IDColumn {
				continue
			}
			switch {
			case !c.insertable:
				p.skipped = append(p.skipped, c.name+" (generated)")
				continue
			case c.kind == kUnsupported:
				p.skipped = append(p.skipped, c.name+" (type "+c.typeName+")")
				continue
			}
			_ = add("", c, []string{c.name})
		}
		if len(p.cols) == 0 {
			return nil, bad("table", "%s has no column the sink can write", p.table.Sanitize())
		}
	}
	if p.upsert {
		for i, k := range cfg.Key {
			j := slices.Index(p.names, k)
			if j < 0 {
				if _, exists := t.byName[k]; !exists {
					return nil, bad(fmt.Sprintf("key[%d]", i), "column %q does not exist in %s", k, p.table.Sanitize())
				}
				return nil, bad(fmt.Sprintf("key[%d]", i), "column %q is not mapped", k)
			}
			p.keys = append(p.keys, j)
		}
		want := slices.Clone(cfg.Key)
		sort.Strings(want)
		found := false
		for _, u := range t.uniques {
			found = found || slices.Equal(u, want)
		}
		if !found {
			return nil, bad("key", "%s has no primary key or unique index on exactly (%s); ON CONFLICT needs one", p.table.Sanitize(), strings.Join(cfg.Key, ", "))
		}
	}
	return p, nil
}
