// Command csv is VRSky's CSV converter, both ways:
//
//   - csv_to_json: CSV text in; one JSON object per record out (split, the
//     default) or one JSON array of them. Field names come from the header
//     row, or "columns", or are col1, col2, ….
//   - json_to_csv: a JSON object or an array of objects in; CSV text out,
//     with a header row unless "header" is false. Columns come from
//     "columns" or the first object's keys in order.
//
// Config: {"mode": "csv_to_json", "delimiter": ";", "header": true, "split": true}
package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/abi/guest"
	"github.com/vrsky/vrsky/abi/guest/jsonval"
)

type config struct {
	toJSON    bool
	delimiter rune
	header    bool
	split     bool
	columns   []string
}

var (
	cfg    config
	parser fastjson.Parser
	out    []byte
	buf    bytes.Buffer
)

func init() {
	guest.Setup(setup)
	guest.Process(process)
}

func setup(raw []byte) error {
	v, err := fastjson.ParseBytes(raw)
	if err != nil {
		return fmt.Errorf("config is not JSON: %w", err)
	}
	switch mode := string(v.GetStringBytes("mode")); mode {
	case "csv_to_json", "":
		cfg.toJSON = true
	case "json_to_csv":
	default:
		return fmt.Errorf("mode %q: want csv_to_json or json_to_csv", mode)
	}
	cfg.delimiter = ','
	if d := v.GetStringBytes("delimiter"); len(d) > 0 {
		r, size := utf8.DecodeRune(d)
		if size != len(d) || r == '"' || r == '\n' || r == '\r' {
			return fmt.Errorf("delimiter %q: want one character other than a quote or newline", d)
		}
		cfg.delimiter = r
	}
	cfg.header = !v.Exists("header") || v.GetBool("header")
	cfg.split = !v.Exists("split") || v.GetBool("split")
	for _, c := range v.GetArray("columns") {
		cfg.columns = append(cfg.columns, string(c.GetStringBytes()))
	}
	return nil
}

func process(m *guest.Message) error {
	if cfg.toJSON {
		return csvToJSON(m)
	}
	return jsonToCSV(m)
}

func csvToJSON(m *guest.Message) error {
	r := csv.NewReader(bytes.NewReader(m.Data()))
	r.Comma = cfg.delimiter
	r.ReuseRecord = true
	names := cfg.columns
	if cfg.header {
		rec, err := r.Read()
		if err == io.EOF {
			m.Drop()
			return nil
		}
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		names = append([]string(nil), rec...)
	}
	n := 0
	out = out[:0]
	if !cfg.split {
		out = append(out, '[')
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		if cfg.split {
			out = out[:0]
		} else if n > 0 {
			out = append(out, ',')
		}
		out = append(out, '{')
		for i, f := range rec {
			if i > 0 {
				out = append(out, ',')
			}
			if i < len(names) {
				out = jsonval.AppendString(out, names[i])
			} else {
				out = jsonval.AppendString(out, "col"+strconv.Itoa(i+1))
			}
			out = append(out, ':')
			out = jsonval.AppendString(out, f)
		}
		out = append(out, '}')
		n++
		if cfg.split {
			if err := m.Emit(out); err != nil {
				return err
			}
		}
	}
	if cfg.split {
		if n == 0 {
			m.Drop()
		}
		return nil
	}
	out = append(out, ']')
	return m.Emit(out)
}

func jsonToCSV(m *guest.Message) error {
	v, err := parser.ParseBytes(m.Data())
	if err != nil {
		return fmt.Errorf("input is not JSON: %w", err)
	}
	var rows []*fastjson.Value
	switch v.Type() {
	case fastjson.TypeObject:
		rows = []*fastjson.Value{v}
	case fastjson.TypeArray:
		rows = v.GetArray()
	default:
		return errors.New("input must be a JSON object or an array of objects")
	}
	cols := cfg.columns
	if len(cols) == 0 && len(rows) > 0 {
		o, err := rows[0].Object()
		if err != nil {
			return errors.New("input must be a JSON object or an array of objects")
		}
		o.Visit(func(k []byte, _ *fastjson.Value) { cols = append(cols, string(k)) })
	}
	buf.Reset()
	w := csv.NewWriter(&buf)
	w.Comma = cfg.delimiter
	if cfg.header {
		w.Write(cols)
	}
	rec := make([]string, len(cols))
	for i, row := range rows {
		if row.Type() != fastjson.TypeObject {
			return fmt.Errorf("element %d is not an object", i)
		}
		for j, c := range cols {
			rec[j] = field(row.Get(c))
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	if err := m.SetHeader("Content-Type", "text/csv"); err != nil {
		return err
	}
	return m.Emit(buf.Bytes())
}

// field renders one JSON value as a CSV field: strings as they are, null
// and missing as empty, anything else as its JSON text.
func field(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNull:
		return ""
	}
	return v.String()
}

func main() {}
