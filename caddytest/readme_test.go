package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/pberkel/caddy-storage-redis" // README's fleet snippet uses storage redis
)

// Every Caddyfile snippet in README.md adapts: a reader can paste any of
// them. A snippet that starts with a global options block is adapted as
// it is, with a site after it; any other is put inside a site. The syntax
// summaries, whose values are written <like this>, are not configs.
func TestReadmeSnippetsAdapt(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippets := readmeSnippets(string(readme))
	if len(snippets) < 10 {
		t.Fatalf("found %d caddyfile snippets in README.md, want at least 10", len(snippets))
	}
	for _, s := range snippets {
		if strings.Contains(s.text, "```") {
			t.Errorf("README.md:%d: the snippet holds a fence: the one before it is not closed", s.line)
			continue
		}
		if syntaxValue.MatchString(s.text) {
			continue
		}
		src := "http://:8080 {\n" + s.text + "\n}\n"
		if strings.HasPrefix(strings.TrimSpace(s.text), "{") {
			src = s.text + "\nhttp://:8080 {\n\trespond 200\n}\n"
		} else if strings.HasPrefix(strings.TrimSpace(s.text), "http://") {
			src = s.text
		}
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "README.md"})
		if err != nil {
			t.Errorf("README.md:%d: the snippet does not adapt: %v", s.line, err)
		}
	}
}

// syntaxValue is a value in a syntax summary, such as <n> or <matcher>.
var syntaxValue = regexp.MustCompile(`<[a-z_.]+>`)

type readmeSnippet struct {
	line int // of the snippet's first line
	text string
}

// readmeSnippets returns the ```caddyfile blocks of a Markdown text, with
// the indentation of their fence removed. A block must be closed by a
// fence of its own indentation: an unclosed one runs on to the next
// block's closing fence, and so contains that block's opening one.
func readmeSnippets(md string) []readmeSnippet {
	var out []readmeSnippet
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		indent, ok := strings.CutSuffix(lines[i], "```caddyfile")
		if !ok || strings.TrimSpace(indent) != "" {
			continue
		}
		s := readmeSnippet{line: i + 2}
		var body []string
		for i++; i < len(lines) && lines[i] != indent+"```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		s.text = strings.Join(body, "\n")
		out = append(out, s)
	}
	return out
}
