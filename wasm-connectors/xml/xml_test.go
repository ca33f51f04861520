package main

import (
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/wasmsteptest"
)

func TestXML(t *testing.T) {
	wasmsteptest.Run(t, "xml", []wasmsteptest.Case{
		{Name: "to json", Config: `{}`,
			In:         `<?xml version="1.0"?><order id="7"><item sku="a">2</item><item sku="b">1</item><note>rush &amp; wrap</note><empty/></order>`,
			Out:        []string{`{"order":{"@id":"7","item":[{"@sku":"a","#text":"2"},{"@sku":"b","#text":"1"}],"note":"rush & wrap","empty":""}}`},
			OutHeaders: map[string]string{"Content-Type": "application/json"}},
		{Name: "malformed", Config: `{}`, In: `<a><b></a>`, Status: wasmsteptest.Permanent, ErrHas: "xml:"},
		{Name: "not xml", Config: `{}`, In: `just text`, Status: wasmsteptest.Permanent, ErrHas: "no root"},
		{Name: "to xml", Config: `{"mode":"json_to_xml"}`,
			In:  `{"order":{"@id":"7","item":[{"@sku":"a","#text":"2"},{"@sku":"b","#text":"1"}],"note":"rush & wrap","gone":null}}`,
			Out: []string{`<order id="7"><item sku="a">2</item><item sku="b">1</item><note>rush &amp; wrap</note><gone/></order>`}},
		{Name: "to xml wrapped", Config: `{"mode":"json_to_xml","root":"doc"}`, In: `{"a":1,"b":[true,"x"]}`,
			Out: []string{`<doc><a>1</a><b>true</b><b>x</b></doc>`}},
		{Name: "to xml bad key", Config: `{"mode":"json_to_xml"}`, In: `{"a b":1}`, Status: wasmsteptest.Permanent, ErrHas: "not an XML name"},
		{Name: "to xml not JSON", Config: `{"mode":"json_to_xml"}`, In: `<a/>`, Status: wasmsteptest.Permanent, ErrHas: "not JSON"},
	})
}
