// Command csv is VRSky's CSV converter, both ways:
//
//   - csv_to_json: CSV text in; one JSON object per record out (split, the
//     default) or one JSON array of them. Field names come from the header
//     row, or "columns", or are col1, col2, ….
//   - json_to_csv: a JSON object or an array of objects in; CSV text out,
//     with a header row unless "header" is false. Columns come from
//     "columns" or the first object's keys in order.
//
// A claim-checked input (a payload over the claim-check threshold) is read
// from the object store as a stream; as one array its JSON is written to
// a new object as it is made, so a large file never sits whole in memory.
//
// Config: {"mode": "csv_to_json", "delimiter": ";", "header": true, "split": true}
package main

import (
	"bufio"
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
	src, err := m.Payload()
	if err != nil {
		return err
	}
	defer src.Close()
	if cfg.split {
		n, err := eachRecord(src, m.Emit)
		if errors.Is(err, errNoHeader) || (err == nil && n == 0) {
			m.Drop()
			return nil
		}
		return err
	}
	if m.Claimed() {
		// A claim-checked file stays out of memory: the array streams
		// into an object of its own.
		err = m.EmitObject(func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 64<<10)
			if err := writeArray(src, bw); err != nil {
				return err
			}
			return bw.Flush()
		})
	} else {
		buf.Reset()
		if err = writeArray(src, &buf); err == nil {
			err = m.Emit(buf.Bytes())
		}
	}
	if errors.Is(err, errNoHeader) {
		m.Drop()
		return nil
	}
	return err
}

// errNoHeader: the input is empty where a header row was expected.
var errNoHeader = errors.New("no header row")

// writeArray writes the records of src to w as one JSON array.
func writeArray(src io.Reader, w io.Writer) error {
	sep := []byte("[")
	if _, err := eachRecord(src, func(rec []byte) error {
		if _, err := w.Write(sep); err != nil {
			return err
		}
		sep[0] = ','
		_, err := w.Write(rec)
		return err
	}); err != nil {
		return err
	}
	if sep[0] == '[' { // no record
		_, err := w.Write([]byte("[]"))
		return err
	}
	_, err := w.Write([]byte("]"))
	return err
}

// eachRecord parses CSV from src and hands each record, as a JSON object,
// to emit (the slice is reused). It returns how many there were.
func eachRecord(src io.Reader, emit func(rec []byte) error) (int, error) {
	r := csv.NewReader(src)
	r.Comma = cfg.delimiter
	r.ReuseRecord = true
	names := cfg.columns
	if cfg.header {
		rec, err := r.Read()
		if err == io.EOF {
			return 0, errNoHeader
		}
		if err != nil {
			return 0, fmt.Errorf("csv: %w", err)
		}
		names = append([]string(nil), rec...)
	}
	n := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("csv: %w", err)
		}
		out = append(out[:0], '{')
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
		if err := emit(out); err != nil {
			return n, err
		}
	}
}

func jsonToCSV(m *guest.Message) error {
	data := m.Data()
	if m.Claimed() {
		// JSON is parsed whole: read the object into memory.
		src, err := m.Payload()
		if err != nil {
			return err
		}
		data, err = io.ReadAll(src)
		src.Close()
		if err != nil {
			return err
		}
	}
	v, err := parser.ParseBytes(data)
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
	if m.Claimed() {
		return m.EmitObject(func(w io.Writer) error {
			_, err := w.Write(buf.Bytes())
			return err
		})
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
