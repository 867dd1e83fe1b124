package wire

import (
	"errors"
	"strings"
)

// JoinArgs builds a STARTPMDA argument string the way pmcd does: words are
// joined by single spaces, a word containing a space or tab is wrapped in
// double quotes, and every double quote inside a word gets a backslash.
func JoinArgs(argv []string) string {
	var b strings.Builder
	for i, w := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		quoted := strings.ContainsAny(w, " \t")
		if quoted {
			b.WriteByte('"')
		}
		b.WriteString(strings.ReplaceAll(w, `"`, `\"`))
		if quoted {
			b.WriteByte('"')
		}
	}
	return b.String()
}

// SplitArgs undoes JoinArgs exactly. A backslash is special only before a
// double quote, because pmcd escapes nothing else; unbalanced quotes, a quote
// glued to the next word and an empty program name are errors rather than
// guesses, since the result is executed as root.
func SplitArgs(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty argument string")
	}
	var argv []string
	var word strings.Builder
	i := 0
	for {
		word.Reset()
		quoted := i < len(s) && s[i] == '"'
		if quoted {
			i++
		}
		closed := false
		for i < len(s) {
			c := s[i]
			if c == '\\' && i+1 < len(s) && s[i+1] == '"' {
				word.WriteByte('"')
				i += 2
				continue
			}
			if quoted && c == '"' {
				closed = true
				i++
				break
			}
			if !quoted && c == '"' {
				return nil, errors.New("unescaped double quote inside a word")
			}
			if !quoted && c == ' ' {
				break
			}
			word.WriteByte(c)
			i++
		}
		if quoted && !closed {
			return nil, errors.New("unterminated double quote")
		}
		argv = append(argv, word.String())
		if i == len(s) {
			break
		}
		if s[i] != ' ' {
			return nil, errors.New("closing double quote not followed by a space")
		}
		i++
		if i == len(s) {
			argv = append(argv, "")
			break
		}
	}
	if argv[0] == "" {
		return nil, errors.New("empty program name")
	}
	return argv, nil
}
