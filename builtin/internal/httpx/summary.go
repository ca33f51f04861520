package httpx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// An error quotes a failed response's body as one short line: a DLQ
// entry, a message's trace and a log record carry the error text, and a
// whole error page (an HTML 502 from a proxy, a stack trace) in each of
// them is noise that hides the status.
const (
	// summaryLen is how many bytes of the body's text an error quotes.
	summaryLen = 200
	// peekLen is how much of the body is read to find that text: an HTML
	// page spends its first kilobytes on markup.
	peekLen = 4 << 10
	// drainLen is how much more is read (and dropped) so that the
	// connection can be reused; a longer body closes it instead.
	drainLen = 1 << 20
)

// Summary returns the body of a failed response as an error quotes it:
// its text with whitespace collapsed, at most summaryLen bytes; an HTML
// page's text without its markup; and, when the text is not the body as
// sent (markup dropped, or cut), a note of its type and size,
// "(text/html, 1.2 KiB)". A body that is not text is only that note; an
// empty body is "". contentType is the response's Content-Type, head the
// start of the body, size the body's length, and more whether it went on
// beyond size (it was not read to its end).
func Summary(contentType string, head []byte, size int64, more bool) string {
	if len(bytes.TrimSpace(head)) == 0 && size <= int64(len(head)) && !more {
		return ""
	}
	media := mediaType(contentType, head)
	cut := more || size > int64(len(head)) // head is not the whole body
	n := noteOf(media, size, more)
	if !isText(head, cut) || !textual(media) {
		return n
	}
	text := string(head)
	lossy := cut
	switch {
	case media == "text/html" || media == "application/xhtml+xml":
		text, lossy = htmlText(head), true
	case !cut && (media == "application/json" || strings.HasSuffix(media, "+json")):
		var b bytes.Buffer
		if json.Compact(&b, head) == nil { // one line, as the receiver meant it
			text = b.String()
		}
	}
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > summaryLen {
		text = clipUTF8(text, summaryLen) + "…"
		lossy = true
	}
	switch {
	case !lossy:
		return text
	case text == "":
		return n
	default:
		return text + " " + n
	}
}

// mediaType is contentType's media type, or, when it has none, what the
// body looks like (net/http's sniffing).
func mediaType(contentType string, head []byte) string {
	if contentType == "" {
		contentType = http.DetectContentType(head)
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "application/octet-stream"
	}
	return mt
}

// textual reports whether a body of media type mt is meant to be read as
// text.
func textual(mt string) bool {
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"),
		mt == "application/json", mt == "application/xml", mt == "application/javascript",
		mt == "application/x-www-form-urlencoded", mt == "application/x-ndjson":
		return true
	}
	return false
}

// isText reports whether b is UTF-8 without control characters other than
// whitespace; cut says b may end in the middle of a character.
func isText(b []byte, cut bool) bool {
	if cut {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if (c < ' ' && c != '\t' && c != '\n' && c != '\r') || c == 0x7f {
			return false
		}
	}
	return true
}

// noteOf is "(media, size)", or "(media, over size)" when there was more.
func noteOf(media string, size int64, more bool) string {
	if more {
		return fmt.Sprintf("(%s, over %s)", media, byteSize(size))
	}
	return fmt.Sprintf("(%s, %s)", media, byteSize(size))
}

func byteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}

// clipUTF8 cuts s to at most n bytes, on a character boundary.
func clipUTF8(s string, n int) string {
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// htmlText is the text of an HTML page (or the start of one): tags and
// comments dropped, script and style contents dropped, entities decoded.
// The title is kept only when the page has no other text: error pages
// repeat it in their first heading.
func htmlText(b []byte) string {
	var body, title strings.Builder
	s := string(b)
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			body.WriteString(s)
			break
		}
		body.WriteString(s[:i])
		body.WriteByte(' ')
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			s = after(s, "-->")
			continue
		}
		name := tagName(s)
		s = after(s, ">")
		switch name {
		case "script", "style", "title":
			end := indexFold(s, "</"+name)
			if end < 0 {
				end = len(s)
			}
			if name == "title" {
				title.WriteString(s[:end])
			}
			s = after(s[end:], ">")
		}
	}
	text := html.UnescapeString(body.String())
	if strings.TrimSpace(text) == "" {
		return html.UnescapeString(title.String())
	}
	return text
}

// tagName is the lower-cased element name of the tag s starts with ("" for
// an end tag or a declaration).
func tagName(s string) string {
	s = s[1:]
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return strings.ToLower(s[:n])
}

// after is what follows the first sep in s, or "" when s has none.
func after(s, sep string) string {
	if i := strings.Index(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return ""
}

// indexFold is strings.Index for an ASCII sub, ignoring ASCII case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
