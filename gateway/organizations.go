package gateway

import "maps"

// Directory names organisations by ODS code: the names people read on the
// pages, in the CSV and in MeasureReport displays, where a bare code
// ("A81001") tells a person nothing. It is built once from the
// configuration (its organizations, and the names clients and providers
// carry) and only read afterwards.
type Directory map[string]string

// Name is the organisation's name, or "" when the directory has none.
func (d Directory) Name(ods string) string { return d[ods] }

// Label names an organisation known by its code as people read it: "Example
// Surgery (A81001)", the code kept beside the name because it is what
// systems and colleagues quote; the code alone when no name is known.
func (d Directory) Label(ods string) string {
	if name := d[ods]; name != "" && name != ods {
		return name + " (" + ods + ")"
	}
	return ods
}

// cloneDirectory keeps the Core's directory its own.
func cloneDirectory(d map[string]string) Directory {
	if d == nil {
		return Directory{}
	}
	return Directory(maps.Clone(d))
}
