package structure

import "strconv"

// loc is where a value sits, as a chain to the root. It is turned into a
// FHIRPath only when a problem is reported there: building the path of
// every element of every valid resource cost a third of validation. (The
// chain lives on the stack; String keeps no pointer to it, so it stays
// there.)
type loc struct {
	up    *loc
	name  string // a member's name; "" for an array item
	index int
}

func (l *loc) member(name string) loc { return loc{up: l, name: name} }
func (l *loc) item(i int) loc         { return loc{up: l, index: i} }

// String is the FHIRPath of the place: Task.input[0].valueCoding. It is
// written from the end, walking up the chain.
func (l *loc) String() string {
	n := 0
	for p := l; p != nil; p = p.up {
		n += len(p.name) + 1
		if p.name == "" {
			n += 21 // brackets and the digits of any int
		}
	}
	b := make([]byte, n)
	i := n
	for p := l; p != nil; p = p.up {
		if p.name == "" {
			i--
			b[i] = ']'
			digits := strconv.Itoa(p.index)
			i -= len(digits)
			copy(b[i:], digits)
			i--
			b[i] = '['
			continue
		}
		i -= len(p.name)
		copy(b[i:], p.name)
		if p.up != nil {
			i--
			b[i] = '.'
		}
	}
	return string(b[i:])
}
