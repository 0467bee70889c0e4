package events

import (
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Every row of the catalogue must encode and decode its own fact: New names it and
// puts it on its stream, Decode gives back the same value of the same Go type.
func TestCatalogue_EveryRowRoundTrips(t *testing.T) {
	for _, k := range catalogue {
		t.Run(k.name, func(t *testing.T) {
			// given a fact of the row's type with every string field set
			v := reflect.New(k.goType).Elem()
			n := 0
			fillStrings(v, &n)
			fact := v.Interface()

			// when it is made into an envelope and decoded again
			env, err := New(fact, Meta{ID: "id", Source: "mcpes://t", Actor: "system", Time: time.Unix(1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(env)
			if err != nil {
				t.Fatal(err)
			}

			// then the type name, stream and value are the row's
			if env.Type != k.name {
				t.Errorf("type %q, want %q", env.Type, k.name)
			}
			if want := k.stream(fact); env.Subject != want || want == "" {
				t.Errorf("subject %q, want %q", env.Subject, want)
			}
			if !reflect.DeepEqual(got, fact) {
				t.Errorf("decoded %#v, want %#v", got, fact)
			}
		})
	}
}

// No two rows may share a type name or a Go type, and every name follows
// mcpes.<area>.<fact>.v<N>.
func TestCatalogue_RowsAreUniqueAndNamedWithAVersion(t *testing.T) {
	// given the catalogue
	names := map[string]bool{}
	types := map[reflect.Type]bool{}
	pattern := regexp.MustCompile(`^mcpes\.[a-z]+\.[a-z_]+\.v[1-9][0-9]*$`)

	// when every row is looked at
	for _, k := range catalogue {
		// then its name and Go type are new and its name is well formed
		if names[k.name] {
			t.Errorf("type name %q appears twice", k.name)
		}
		if types[k.goType] {
			t.Errorf("Go type %s appears twice", k.goType)
		}
		names[k.name], types[k.goType] = true, true
		if !pattern.MatchString(k.name) {
			t.Errorf("type name %q is not mcpes.<area>.<fact>.v<N>", k.name)
		}
	}
	if len(Types()) != len(catalogue) {
		t.Errorf("Types() lists %d, catalogue has %d rows", len(Types()), len(catalogue))
	}
}

// fillStrings sets every settable string in v (through structs) to a distinct value.
func fillStrings(v reflect.Value, n *int) {
	switch v.Kind() {
	case reflect.String:
		*n++
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillStrings(v.Field(i), n)
			}
		}
	}
}
