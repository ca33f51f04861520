package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/runtime/connector"
)

// batch holds the converted rows of a batch of messages. Message i owns
// rows first[i] to first[i+1]-1.
type batch struct {
	plan   *plan
	chunk  []any // where rows' values are carved from (see alloc)
	rows   []row
	first  []int
	msgIDs []string
	shapes [][]int        // per shape: the columns present
	shapeN map[string]int // shape key (one byte per column) to shape
	seen   []byte         // the current row's shape key
}

// row is one row of the table.
type row struct {
	vals  []any // one per plan column
	shape int
}

// build converts msgs into rows. A message that cannot become rows gets
// its error in errs (Permanent when retrying cannot help) and no rows.
func (s *sink) build(ctx context.Context, p *plan, msgs []*connector.Message, errs []error) *batch {
	b := &batch{
		plan:   p,
		rows:   make([]row, 0, len(msgs)),
		first:  make([]int, len(msgs)+1),
		shapeN: map[string]int{},
		seen:   make([]byte, len(p.cols)),
	}
	parser := s.parsers.Get()
	defer s.parsers.Put(parser)
	for i, m := range msgs {
		b.msgIDs = append(b.msgIDs, m.ID)
		b.first[i] = len(b.rows)
		if err := b.addMessage(ctx, parser, m); err != nil {
			errs[i] = err
			b.rows = b.rows[:b.first[i]]
		}
	}
	b.first[len(msgs)] = len(b.rows)
	return b
}

func (b *batch) addMessage(ctx context.Context, parser *fastjson.Parser, m *connector.Message) error {
	data, err := m.Bytes(ctx) // a claim-checked payload comes from the object store
	if err != nil {
		return fmt.Errorf("postgres sink: read payload: %w", err)
	}
	v, err := parser.ParseBytes(data)
	if err != nil {
		return connector.Permanent(fmt.Errorf("postgres sink: the message is not valid JSON: %w", err))
	}
	switch v.Type() {
	case fastjson.TypeObject:
		return b.addRow(v, m.ID, "")
	case fastjson.TypeArray:
		elems, _ := v.Array()
		for j, e := range elems {
			if e.Type() != fastjson.TypeObject {
				return connector.Permanent(fmt.Errorf("postgres sink: element %d of the array is a JSON %s; each row must be an object", j, e.Type()))
			}
			if err := b.addRow(e, m.ID, fmt.Sprintf("[%d].", j)); err != nil {
				return err
			}
		}
		return nil
	default:
		return connector.Permanent(fmt.Errorf("postgres sink: the message is a JSON %s; it must be an object (one row) or an array of objects", v.Type()))
	}
}

// addRow converts one JSON object. prefix locates it in its message, for
// errors ("[3]." for the fourth element of an array).
func (b *batch) addRow(obj *fastjson.Value, id, prefix string) error {
	p := b.plan
	vals := b.alloc(len(p.cols))
	for j, c := range p.cols {
		if j == p.idCol {
			v, err := convertString(id, c.kind)
			if err != nil {
				return connector.Permanent(fmt.Errorf("postgres sink: message id %q cannot be stored in column %s (%s)", id, c.name, c.typeName))
			}
			vals[j], b.seen[j] = v, 1
			continue
		}
		fv := obj.Get(p.paths[j]...)
		if fv == nil {
			b.seen[j] = 0
			continue
		}
		v, err := convertJSON(fv, c.kind)
		if err != nil {
			return connector.Permanent(fmt.Errorf("postgres sink: field %q: cannot store %v in column %s (%s)",
				prefix+strings.Join(p.paths[j], "."), err, c.name, c.typeName))
		}
		vals[j], b.seen[j] = v, 1
	}
	for _, k := range p.keys {
		if b.seen[k] == 0 {
			return connector.Permanent(fmt.Errorf("postgres sink: field %q (key column %s) is missing",
				prefix+strings.Join(p.paths[k], "."), p.cols[k].name))
		}
	}
	sh, ok := b.shapeN[string(b.seen)]
	if !ok {
		var cols []int
		for j, present := range b.seen {
			if present == 1 {
				cols = append(cols, j)
			}
		}
		sh = len(b.shapes)
		b.shapes = append(b.shapes, cols)
		b.shapeN[string(b.seen)] = sh
	}
	b.rows = append(b.rows, row{vals: vals, shape: sh})
	return nil
}

// alloc returns n zeroed values for one row, carved from chunks of about
// 1024 rows so that a large batch neither allocates per row nor copies
// what it holds as it grows.
func (b *batch) alloc(n int) []any {
	if len(b.chunk)+n > cap(b.chunk) {
		b.chunk = make([]any, 0, max(n*1024, 64))
	}
	off := len(b.chunk)
	b.chunk = b.chunk[:off+n]
	return b.chunk[off : off+n : off+n]
}
