package gotchadapt

import (
	"bufio"
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// function is one top-level C++ function definition in a wrapper file.
type function struct {
	Name       string
	ReturnType string
	Header     []string // the lines from the start of the signature to the opening brace
	Start, End int      // 1-based line numbers of the first signature line and the closing brace
}

// signatureRe matches the first line of a top-level definition such as
// "void atg_abs(tensor *out__, tensor self) {" or "int64_t at_dim(tensor t) {".
var signatureRe = regexp.MustCompile(`^([A-Za-z_][\w\s\*]*?[\s\*])([A-Za-z_]\w*)\(`)

// parseFunctions finds the top-level function definitions of a wrapper file.
// gotch's wrappers start every definition at column 0 and close it with a
// "}" alone at column 0, which is all this relies on.
func parseFunctions(src []byte) []function {
	lines := splitLines(src)
	var fns []function
	for i := 0; i < len(lines); i++ {
		m := signatureRe.FindStringSubmatch(lines[i])
		if m == nil || strings.HasPrefix(lines[i], "#") || strings.HasPrefix(lines[i], "typedef") {
			continue
		}
		// Find the opening brace; a ";" first means a declaration, not a definition.
		open := -1
		for j := i; j < len(lines) && j < i+20; j++ {
			if strings.HasSuffix(strings.TrimSpace(lines[j]), ";") && !strings.Contains(lines[j], "{") {
				break
			}
			if strings.Contains(lines[j], "{") {
				open = j
				break
			}
		}
		if open < 0 {
			continue
		}
		closeAt := -1
		for j := open; j < len(lines); j++ {
			if lines[j] == "}" || (j == open && strings.HasSuffix(strings.TrimSpace(lines[j]), "}")) {
				closeAt = j
				break
			}
		}
		if closeAt < 0 {
			continue
		}
		fns = append(fns, function{
			Name:       m[2],
			ReturnType: strings.TrimSpace(m[1]),
			Header:     lines[i : open+1],
			Start:      i + 1,
			End:        closeAt + 1,
		})
		i = closeAt
	}
	return fns
}

// stubFunctions replaces the bodies of the named functions by a stub that
// sets gotch's thread-local error, so calling one from Go returns an error
// naming it instead of failing the whole build.
func stubFunctions(src []byte, names map[string]bool) ([]byte, []string) {
	lines := splitLines(src)
	fns := parseFunctions(src)
	var out []string
	var stubbed []string
	next := 0
	for _, f := range fns {
		if !names[f.Name] {
			continue
		}
		out = append(out, lines[next:f.Start-1]...)
		out = append(out, stubLines(f)...)
		next = f.End
		stubbed = append(stubbed, f.Name)
	}
	out = append(out, lines[next:]...)
	return []byte(strings.Join(out, "\n") + "\n"), stubbed
}

func stubLines(f function) []string {
	header := append([]string(nil), f.Header...)
	last := header[len(header)-1]
	header[len(header)-1] = last[:strings.Index(last, "{")+1]
	body := []string{fmt.Sprintf("  torch_last_err = strdup(%q);", f.Name+" is not available in this libtorch")}
	if f.ReturnType != "void" {
		body = append(body, "  return {};")
	}
	return append(append(header, body...), "}")
}

// diagnosticRe matches a compiler diagnostic location: "path:line:col: error:"
// or the "required from here" notes of template errors, which point back at
// the wrapper line that caused an error deep inside a torch header.
var diagnosticRe = regexp.MustCompile(`^(\S+?):(\d+):\d+:\s+(error:|required from here)`)

// failingLines maps each wrapper file (by base name) to the lines the
// compiler's output blames.
func failingLines(compilerOutput []byte, files []string) map[string][]int {
	want := map[string]bool{}
	for _, f := range files {
		want[filepath.Base(f)] = true
	}
	found := map[string][]int{}
	sc := bufio.NewScanner(bytes.NewReader(compilerOutput))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		m := diagnosticRe.FindStringSubmatch(sc.Text())
		if m == nil || !want[filepath.Base(m[1])] {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		found[filepath.Base(m[1])] = append(found[filepath.Base(m[1])], n)
	}
	return found
}

// functionsAt names the functions that contain the given lines. A line
// outside every function is returned in orphans: it cannot be stubbed, and
// the caller reports it.
func functionsAt(src []byte, lines []int) (names map[string]bool, orphans []int) {
	fns := parseFunctions(src)
	names = map[string]bool{}
	for _, l := range lines {
		i := sort.Search(len(fns), func(i int) bool { return fns[i].End >= l })
		if i < len(fns) && fns[i].Start <= l {
			names[fns[i].Name] = true
		} else {
			orphans = append(orphans, l)
		}
	}
	return names, orphans
}

func splitLines(src []byte) []string {
	s := strings.TrimSuffix(string(src), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
