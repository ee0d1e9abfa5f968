package runbook

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParamType is the type of a runbook parameter.
type ParamType string

const (
	ParamString  ParamType = "string"
	ParamNumber  ParamType = "number"
	ParamBoolean ParamType = "boolean"
	ParamEnum    ParamType = "enum"
)

// ParamTypes lists the parameter types.
func ParamTypes() []ParamType { return []ParamType{ParamString, ParamNumber, ParamBoolean, ParamEnum} }

// Param is a typed input a run is started with: ${{ params.NAME }}.
type Param struct {
	Name        string
	Type        ParamType
	Required    bool
	Description string
	// Default, when HasDefault, is the value used when a run gives none:
	// a string, float64 or bool by Type.
	Default    any
	HasDefault bool
	// Values are the allowed values of an enum.
	Values []string
	Pos    Pos
}

// params reads the params mapping: name -> {type, required, default, values, description}.
func (p *parser) params(n *yaml.Node) []Param {
	if !p.expect(n, yaml.MappingNode, "params") {
		return nil
	}
	var out []Param
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		prm := Param{Name: k.Value, Type: ParamString, Pos: Pos{File: p.included, Line: k.Line, Column: k.Column}}
		if !envNameRe.MatchString(prm.Name) {
			p.errorf(k, "param name %q: use letters, digits and '_', not starting with a digit", prm.Name)
			continue
		}
		for _, o := range out {
			if o.Name == prm.Name {
				p.errorf(k, "param %q is defined twice", prm.Name)
			}
		}
		var defNode *yaml.Node
		if deref(v).Kind == yaml.ScalarNode && deref(v).Tag == "!!null" {
			out = append(out, prm)
			continue
		}
		if !p.expect(v, yaml.MappingNode, "param "+prm.Name) {
			continue
		}
		p.fields(v, "param", Keys["param"], func(key string, kn, vn *yaml.Node) {
			switch key {
			case "type":
				t := ParamType(p.scalar(vn, "type"))
				valid := false
				for _, pt := range ParamTypes() {
					valid = valid || t == pt
				}
				if !valid {
					p.errorf(vn, "param %q: type %q: use string, number, boolean or enum", prm.Name, t)
				}
				prm.Type = t
			case "required":
				b, err := strconv.ParseBool(p.scalar(vn, "required"))
				if err != nil {
					p.errorf(vn, "param %q: required must be true or false", prm.Name)
				}
				prm.Required = b
			case "default":
				defNode = vn
			case "values":
				prm.Values = p.names(vn, "values")
			case "description":
				prm.Description = p.scalar(vn, "description")
			}
		})
		switch {
		case prm.Type == ParamEnum && len(prm.Values) == 0:
			p.errorf(v, "param %q is an enum: list its values", prm.Name)
		case prm.Type != ParamEnum && len(prm.Values) > 0:
			p.errorf(v, "param %q: values are only for type enum", prm.Name)
		case prm.Type == ParamEnum && !prm.Required && defNode == nil:
			p.errorf(v, "param %q is an optional enum: give it a default (one of its values)", prm.Name)
		}
		if defNode != nil {
			if prm.Required {
				p.errorf(defNode, "param %q is required, so its default would never be used: drop one of them", prm.Name)
			}
			val, err := prm.convert(p.scalar(defNode, "default"))
			if err != nil {
				p.errorf(defNode, "param %q: default %v", prm.Name, err)
			}
			prm.Default, prm.HasDefault = val, err == nil
		}
		out = append(out, prm)
	}
	return out
}

// convert checks a value given as text against the param's type.
func (prm Param) convert(s string) (any, error) {
	switch prm.Type {
	case ParamNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case ParamBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case ParamEnum:
		for _, v := range prm.Values {
			if v == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("%q is not one of %s", s, strings.Join(prm.Values, ", "))
	}
	return s, nil
}

// ResolveParams checks the values a run is started with against the
// runbook's params and fills in defaults. Values may be JSON-decoded
// (string, float64, bool) or text. Every problem is reported, each naming
// its param.
func (rb *Runbook) ResolveParams(given map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(rb.Params))
	var errs Errors
	fail := func(format string, args ...any) {
		errs = append(errs, Error{File: "params", Msg: fmt.Sprintf(format, args...)})
	}
	known := make([]string, len(rb.Params))
	for i, prm := range rb.Params {
		known[i] = prm.Name
	}
	names := make([]string, 0, len(given))
	for name := range given {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !contains(known, name) {
			msg := fmt.Sprintf("unknown param %q", name)
			if s := nearest(name, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			} else if len(known) == 0 {
				msg += " (this runbook takes no params)"
			} else {
				msg += fmt.Sprintf(" (params: %s)", strings.Join(known, ", "))
			}
			fail("%s", msg)
		}
	}
	for _, prm := range rb.Params {
		v, ok := given[prm.Name]
		switch {
		case !ok && prm.HasDefault:
			out[prm.Name] = prm.Default
		case !ok && prm.Required:
			fail("param %q is required", prm.Name)
		case !ok:
			out[prm.Name] = zero(prm.Type)
		default:
			var text string
			switch v := v.(type) {
			case string:
				text = v
			case float64:
				text = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				text = strconv.FormatBool(v)
			case nil:
				fail("param %q is null; give a value or leave it out", prm.Name)
				continue
			default:
				fail("param %q must be a single value, not %T", prm.Name, v)
				continue
			}
			val, err := prm.convert(text)
			if err != nil {
				fail("param %q (%s): %v", prm.Name, prm.Type, err)
				continue
			}
			out[prm.Name] = val
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func zero(t ParamType) any {
	switch t {
	case ParamNumber:
		return float64(0)
	case ParamBoolean:
		return false
	}
	return ""
}
