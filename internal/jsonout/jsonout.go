// Package jsonout makes JSON output keep one promise of docs/cli.md and docs/api.md: a list
// is always an array. Go encodes a nil slice as null, and nil slices come from everywhere
// (an empty diff, a branch with no conflicts); normalising once at the two places that
// encode (the API handler and the CLI's --json) keeps every call honest, new ones included.
package jsonout

import "reflect"

// EmptyLists returns v with every nil slice inside it (fields, elements, map values,
// behind pointers) replaced by an empty one. v itself is not modified.
func EmptyLists(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	out := reflect.New(rv.Type()).Elem()
	out.Set(fill(rv))
	return out.Interface()
}

// fill returns a copy of v with nil slices made empty; depth is bounded by the type.
func fill(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Slice:
		if v.IsNil() {
			if v.Type().Elem().Kind() == reflect.Uint8 {
				return v // []byte encodes as a base64 string; leave it alone
			}
			return reflect.MakeSlice(v.Type(), 0, 0)
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(fill(v.Index(i)))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(fill(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v) // keeps unexported fields; exported ones are replaced below
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				out.Field(i).Set(fill(v.Field(i)))
			}
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), fill(it.Value()))
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(fill(v.Elem()))
		return out
	}
	return v
}
