//! Go's `encoding/gob` stream format, for the types the libmachine plugin
//! protocol carries: booleans, integers, strings, byte slices, slices, maps,
//! structs and interface values with registered names.
//!
//! A gob stream is a sequence of messages, each `uint length` then `int type
//! id` then data. A negative id defines type `-id` (a `wireType`); a positive
//! one is followed by a value of that type. Unsigned integers take one byte
//! below 128, otherwise the negated byte count and the big-endian bytes;
//! signed integers fold the sign into bit 0. Structs are field deltas and
//! values, closed by a zero delta, with zero values left out; a top-level
//! value that is not a struct is preceded by a zero delta. An interface value
//! is the registered name of its concrete type, that type's id (type
//! definitions may come first, also between messages) and the value,
//! prefixed by its byte count.
//!
//! [`Decoder`] reads any value into a [`Value`] using the type definitions
//! the stream brings. [`Encoder`] writes a [`Value`] of a declared [`Type`],
//! sending each type's definition once per stream before the first message
//! that needs it. Both keep a stream's state, so one of each is used per
//! connection direction, as Go does.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

/// The largest message accepted (Go's own limit is 1 GiB).
pub const MAX_MESSAGE: usize = 64 << 20;
/// How deeply values and types may nest.
const MAX_DEPTH: usize = 64;
/// The first id a stream may define (ids below are Go's built-in types).
const FIRST_USER_ID: i64 = 64;

const T_BOOL: i64 = 1;
const T_INT: i64 = 2;
const T_UINT: i64 = 3;
const T_FLOAT: i64 = 4;
const T_BYTES: i64 = 5;
const T_STRING: i64 = 6;
const T_COMPLEX: i64 = 7;
const T_INTERFACE: i64 = 8;

/// What can go wrong reading or writing a gob stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GobError {
    /// The stream ended (cleanly, between messages).
    #[error("end of gob stream")]
    Eof,
    /// Reading or writing the underlying stream failed.
    #[error("gob stream: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not form a valid gob stream.
    #[error("malformed gob data: {0}")]
    Malformed(String),
    /// A value that does not fit the declared type.
    #[error("gob value does not fit its type: {0}")]
    Mismatch(String),
}

fn bad<T>(what: impl Into<String>) -> Result<T, GobError> {
    Err(GobError::Malformed(what.into()))
}

/// A type as the encoder declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Uint,
    Float,
    Bytes,
    String,
    Interface,
    Slice(Box<Type>),
    Array(Box<Type>, usize),
    Map(Box<Type>, Box<Type>),
    Struct(Arc<StructType>),
}

/// A struct type: its name (informational) and its exported fields in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructType {
    pub name: String,
    pub fields: Vec<(String, Type)>,
}

impl Type {
    /// A struct type named `name` with `fields`.
    pub fn structure(name: &str, fields: &[(&str, Type)]) -> Type {
        Type::Struct(Arc::new(StructType {
            name: name.to_string(),
            fields: fields
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        }))
    }
    /// `[]elem`.
    pub fn slice(elem: Type) -> Type {
        Type::Slice(Box::new(elem))
    }
    /// `map[key]elem`.
    pub fn map(key: Type, elem: Type) -> Type {
        Type::Map(Box::new(key), Box::new(elem))
    }

    fn builtin_id(&self) -> Option<i64> {
        Some(match self {
            Type::Bool => T_BOOL,
            Type::Int => T_INT,
            Type::Uint => T_UINT,
            Type::Float => T_FLOAT,
            Type::Bytes => T_BYTES,
            Type::String => T_STRING,
            Type::Interface => T_INTERFACE,
            _ => return None,
        })
    }
}

/// A value read from or written to a gob stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Complex(f64, f64),
    Bytes(Vec<u8>),
    String(String),
    /// A slice or an array.
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A struct's fields by name; absent fields are zero.
    Struct(Vec<(String, Value)>),
    /// An interface value; `None` is a nil interface.
    Interface(Option<Box<Iface>>),
}

/// The content of a non-nil interface value.
#[derive(Debug, Clone, PartialEq)]
pub struct Iface {
    /// The name the concrete type is registered under (`*mcnflag.StringFlag`, `int`, `[]string`).
    pub name: String,
    /// The concrete type (the encoder needs it; the decoder fills it in).
    pub ty: Type,
    pub value: Value,
}

impl Value {
    /// An interface value holding `value` of type `ty`, registered as `name`.
    pub fn iface(name: &str, ty: Type, value: Value) -> Value {
        Value::Interface(Some(Box::new(Iface {
            name: name.to_string(),
            ty,
            value,
        })))
    }
    /// A struct field by name (`None` when absent, i.e. zero).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(f) => f.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
    /// A string (or byte slice) value, lossily.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
    /// A signed or unsigned integer that fits an i64.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }
    /// The string field `name` of a struct ("" when absent).
    pub fn str_field(&self, name: &str) -> String {
        self.field(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::Float(f) => *f == 0.0,
            Value::Complex(r, i) => *r == 0.0 && *i == 0.0,
            Value::Bytes(b) => b.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Interface(i) => i.is_none(),
            // Go sends non-nil maps and every struct
            Value::Map(_) | Value::Struct(_) => false,
        }
    }
}

// ---------------------------------------------------------------- encoding

fn put_uint(out: &mut Vec<u8>, u: u64) {
    if u < 128 {
        out.push(u as u8);
        return;
    }
    let bytes = u.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let n = bytes.len() - skip;
    out.push((256 - n) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 {
        ((!i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    };
    put_uint(out, u);
}

fn put_float(out: &mut Vec<u8>, f: f64) {
    put_uint(out, f.to_bits().swap_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes values to one gob stream.
#[derive(Debug, Default)]
pub struct Encoder {
    ids: HashMap<Type, i64>,
    next_id: i64,
}

impl Encoder {
    /// An encoder for a new stream.
    pub fn new() -> Self {
        Encoder {
            ids: HashMap::new(),
            next_id: FIRST_USER_ID + 1,
        }
    }

    /// The messages for `value` of type `ty`: definitions of types this
    /// stream has not seen yet, then the value.
    pub fn encode(&mut self, ty: &Type, value: &Value) -> Result<Vec<u8>, GobError> {
        let mut out = Vec::new();
        self.define_types_of(&mut out, ty, value, 0)?;
        let id = self.id_of(ty)?;
        let mut msg = Vec::new();
        put_int(&mut msg, id);
        self.top_value(&mut msg, ty, value, 0)?;
        put_bytes(&mut out, &msg);
        Ok(out)
    }

    /// Encode and write `value` to `w`.
    pub fn write(&mut self, w: &mut impl Write, ty: &Type, value: &Value) -> Result<(), GobError> {
        let bytes = self.encode(ty, value)?;
        w.write_all(&bytes)?;
        Ok(())
    }

    fn id_of(&self, ty: &Type) -> Result<i64, GobError> {
        ty.builtin_id()
            .or_else(|| self.ids.get(ty).copied())
            .ok_or_else(|| GobError::Mismatch(format!("type {ty:?} was never defined")))
    }

    /// Send definitions for `ty` and for the concrete types of interface
    /// values inside `value`.
    fn define_types_of(
        &mut self,
        out: &mut Vec<u8>,
        ty: &Type,
        value: &Value,
        depth: usize,
    ) -> Result<(), GobError> {
        if depth > MAX_DEPTH {
            return Err(GobError::Mismatch("value nests too deeply".into()));
        }
        self.define(out, ty, 0)?;
        match (ty, value) {
            (Type::Interface, Value::Interface(Some(i))) => {
                self.define_types_of(out, &i.ty, &i.value, depth + 1)?
            }
            (Type::Slice(e) | Type::Array(e, _), Value::List(items)) => {
                for v in items {
                    self.define_types_of(out, e, v, depth + 1)?;
                }
            }
            (Type::Map(k, e), Value::Map(entries)) => {
                for (kv, ev) in entries {
                    self.define_types_of(out, k, kv, depth + 1)?;
                    self.define_types_of(out, e, ev, depth + 1)?;
                }
            }
            (Type::Struct(st), Value::Struct(_)) => {
                for (name, fty) in &st.fields {
                    if let Some(v) = value.field(name) {
                        self.define_types_of(out, fty, v, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Send the definition of `ty` (and its parts) unless already sent.
    fn define(&mut self, out: &mut Vec<u8>, ty: &Type, depth: usize) -> Result<i64, GobError> {
        if let Some(id) = ty.builtin_id() {
            return Ok(id);
        }
        if let Some(id) = self.ids.get(ty) {
            return Ok(*id);
        }
        if depth > MAX_DEPTH {
            return Err(GobError::Mismatch("type nests too deeply".into()));
        }
        // parts first, so that every id a definition names is known
        let mut wire = Vec::new();
        let id = match ty {
            Type::Slice(e) => {
                let elem = self.define(out, e, depth + 1)?;
                let id = self.fresh(ty);
                // wireType.SliceT (field 1) { CommonType, Elem }
                put_uint(&mut wire, 2);
                common(&mut wire, "", id);
                put_uint(&mut wire, 1);
                put_int(&mut wire, elem);
                put_uint(&mut wire, 0);
                id
            }
            Type::Array(e, len) => {
                let elem = self.define(out, e, depth + 1)?;
                let id = self.fresh(ty);
                // wireType.ArrayT (field 0) { CommonType, Elem, Len }
                put_uint(&mut wire, 1);
                common(&mut wire, "", id);
                put_uint(&mut wire, 1);
                put_int(&mut wire, elem);
                if *len > 0 {
                    put_uint(&mut wire, 1);
                    put_int(&mut wire, *len as i64);
                }
                put_uint(&mut wire, 0);
                id
            }
            Type::Map(k, e) => {
                let key = self.define(out, k, depth + 1)?;
                let elem = self.define(out, e, depth + 1)?;
                let id = self.fresh(ty);
                // wireType.MapT (field 3) { CommonType, Key, Elem }
                put_uint(&mut wire, 4);
                common(&mut wire, "", id);
                put_uint(&mut wire, 1);
                put_int(&mut wire, key);
                put_uint(&mut wire, 1);
                put_int(&mut wire, elem);
                put_uint(&mut wire, 0);
                id
            }
            Type::Struct(st) => {
                let mut field_ids = Vec::with_capacity(st.fields.len());
                for (_, fty) in &st.fields {
                    field_ids.push(self.define(out, fty, depth + 1)?);
                }
                let id = self.fresh(ty);
                // wireType.StructT (field 2) { CommonType, Field []fieldType }
                put_uint(&mut wire, 3);
                common(&mut wire, &st.name, id);
                if !st.fields.is_empty() {
                    put_uint(&mut wire, 1);
                    put_uint(&mut wire, st.fields.len() as u64);
                    for ((name, _), fid) in st.fields.iter().zip(field_ids) {
                        put_uint(&mut wire, 1);
                        put_bytes(&mut wire, name.as_bytes());
                        put_uint(&mut wire, 1);
                        put_int(&mut wire, fid);
                        put_uint(&mut wire, 0);
                    }
                }
                put_uint(&mut wire, 0);
                id
            }
            _ => return Err(GobError::Mismatch(format!("no definition for {ty:?}"))),
        };
        put_uint(&mut wire, 0); // end of wireType
        let mut msg = Vec::new();
        put_int(&mut msg, -id);
        msg.extend_from_slice(&wire);
        put_bytes(out, &msg);
        Ok(id)
    }

    fn fresh(&mut self, ty: &Type) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(ty.clone(), id);
        id
    }

    /// A value as Go sends it at top level or inside an interface: a struct
    /// as is, anything else after a zero field delta.
    fn top_value(
        &self,
        out: &mut Vec<u8>,
        ty: &Type,
        value: &Value,
        depth: usize,
    ) -> Result<(), GobError> {
        if !matches!(ty, Type::Struct(_)) {
            put_uint(out, 0);
        }
        self.value(out, ty, value, depth)
    }

    fn value(
        &self,
        out: &mut Vec<u8>,
        ty: &Type,
        value: &Value,
        depth: usize,
    ) -> Result<(), GobError> {
        if depth > MAX_DEPTH {
            return Err(GobError::Mismatch("value nests too deeply".into()));
        }
        let mismatch = || GobError::Mismatch(format!("{value:?} is not a {ty:?}"));
        match (ty, value) {
            (Type::Bool, Value::Bool(b)) => put_uint(out, u64::from(*b)),
            (Type::Int, Value::Int(i)) => put_int(out, *i),
            (Type::Int, Value::Uint(u)) => put_int(out, i64::try_from(*u).map_err(|_| mismatch())?),
            (Type::Uint, Value::Uint(u)) => put_uint(out, *u),
            (Type::Uint, Value::Int(i)) => {
                put_uint(out, u64::try_from(*i).map_err(|_| mismatch())?)
            }
            (Type::Float, Value::Float(f)) => put_float(out, *f),
            (Type::Bytes, Value::Bytes(b)) => put_bytes(out, b),
            (Type::Bytes, Value::String(s)) | (Type::String, Value::String(s)) => {
                put_bytes(out, s.as_bytes())
            }
            (Type::String, Value::Bytes(b)) => put_bytes(out, b),
            (Type::Slice(e), Value::List(items)) => {
                put_uint(out, items.len() as u64);
                for v in items {
                    self.value(out, e, v, depth + 1)?;
                }
            }
            (Type::Array(e, len), Value::List(items)) => {
                if items.len() != *len {
                    return Err(mismatch());
                }
                put_uint(out, items.len() as u64);
                for v in items {
                    self.value(out, e, v, depth + 1)?;
                }
            }
            (Type::Map(k, e), Value::Map(entries)) => {
                put_uint(out, entries.len() as u64);
                for (kv, ev) in entries {
                    self.value(out, k, kv, depth + 1)?;
                    self.value(out, e, ev, depth + 1)?;
                }
            }
            (Type::Struct(st), Value::Struct(fields)) => {
                if let Some((n, _)) = fields
                    .iter()
                    .find(|(n, _)| !st.fields.iter().any(|(f, _)| f == n))
                {
                    return Err(GobError::Mismatch(format!(
                        "struct {} has no field {n}",
                        st.name
                    )));
                }
                let mut last: i64 = -1;
                for (i, (name, fty)) in st.fields.iter().enumerate() {
                    let Some(v) = value.field(name) else { continue };
                    if v.is_zero() {
                        continue;
                    }
                    put_uint(out, (i as i64 - last) as u64);
                    last = i as i64;
                    self.value(out, fty, v, depth + 1)?;
                }
                put_uint(out, 0);
            }
            (Type::Interface, Value::Interface(None)) => put_uint(out, 0),
            (Type::Interface, Value::Interface(Some(i))) => {
                if i.name.is_empty() {
                    return Err(GobError::Mismatch(
                        "interface value without a type name".into(),
                    ));
                }
                put_bytes(out, i.name.as_bytes());
                put_int(out, self.id_of(&i.ty)?);
                let mut inner = Vec::new();
                self.top_value(&mut inner, &i.ty, &i.value, depth + 1)?;
                put_bytes(out, &inner);
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }
}

/// CommonType { Name, Id } as field 0 of a wire type's struct.
fn common(wire: &mut Vec<u8>, name: &str, id: i64) {
    put_uint(wire, 1);
    if !name.is_empty() {
        put_uint(wire, 1);
        put_bytes(wire, name.as_bytes());
        put_uint(wire, 1);
    } else {
        put_uint(wire, 2);
    }
    put_int(wire, id);
    put_uint(wire, 0);
}

// ---------------------------------------------------------------- decoding

/// A type a stream defined.
#[derive(Debug, Clone)]
enum Wire {
    Slice(i64),
    Array(i64, usize),
    Map(i64, i64),
    Struct(String, Vec<(String, i64)>),
}

/// Reads values from one gob stream.
#[derive(Debug, Default)]
pub struct Decoder {
    types: HashMap<i64, Wire>,
    buf: Vec<u8>,
    pos: usize,
}

impl Decoder {
    /// A decoder for a new stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read the next value from `r`, taking in the type definitions before it.
    /// [`GobError::Eof`] when the stream ends between messages.
    pub fn read(&mut self, r: &mut impl Read) -> Result<Value, GobError> {
        let mut src = Source::Reader(r);
        self.next_value(&mut src)
    }

    /// Decode every value in `bytes` (a whole stream), for tests and fuzzing.
    pub fn decode_all(&mut self, bytes: &[u8]) -> Result<Vec<Value>, GobError> {
        let mut src: Source<'_, &[u8]> = Source::Slice(bytes);
        let mut out = Vec::new();
        loop {
            match self.next_value(&mut src) {
                Ok(v) => out.push(v),
                Err(GobError::Eof) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    fn next_value<R: Read>(&mut self, src: &mut Source<'_, R>) -> Result<Value, GobError> {
        if self.pos < self.buf.len() {
            return bad("extra data after a value");
        }
        let id = self.type_sequence(src, false)?;
        self.top(src, id, 0)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn recv_message<R: Read>(&mut self, src: &mut Source<'_, R>) -> Result<(), GobError> {
        let len = match src.read_uint()? {
            None => return Err(GobError::Eof),
            Some(n) => n,
        };
        if len == 0 || len > MAX_MESSAGE as u64 {
            return bad(format!("message length {len}"));
        }
        self.buf.clear();
        self.pos = 0;
        self.buf.resize(len as usize, 0);
        src.read_exact(&mut self.buf)
    }

    /// Type definitions, then the id of the value that follows (Go's
    /// decodeTypeSequence). Inside an interface, definitions may be followed
    /// by the byte count of a value still in the buffer.
    fn type_sequence<R: Read>(
        &mut self,
        src: &mut Source<'_, R>,
        in_interface: bool,
    ) -> Result<i64, GobError> {
        let mut defs = 0usize;
        loop {
            if self.remaining() == 0 {
                self.recv_message(src).map_err(|e| match e {
                    GobError::Eof if defs > 0 || in_interface => {
                        GobError::Malformed("stream ends inside a value".into())
                    }
                    e => e,
                })?;
            }
            let id = self.int()?;
            if id >= 0 {
                return Ok(id);
            }
            defs += 1;
            if defs > 10_000 {
                return bad("too many type definitions");
            }
            self.recv_type(-id)?;
            if self.remaining() > 0 {
                if !in_interface {
                    return bad("extra data after a type definition");
                }
                self.uint()?;
            }
        }
    }

    fn recv_type(&mut self, id: i64) -> Result<(), GobError> {
        if id < FIRST_USER_ID || self.types.contains_key(&id) {
            return bad(format!("type id {id} defined twice or reserved"));
        }
        let mut wire = None;
        self.fields(|d, n| {
            let w = match n {
                0 => d.array_type()?,
                1 => d.slice_type()?,
                2 => d.struct_type()?,
                3 => d.map_type()?,
                4..=6 => return bad("GobEncoder and marshaler types are not supported"),
                _ => return bad(format!("wireType has no field {n}")),
            };
            wire = Some(w);
            Ok(())
        })?;
        let wire = wire.ok_or_else(|| GobError::Malformed("empty type definition".into()))?;
        self.types.insert(id, wire);
        Ok(())
    }

    /// Read a struct's fields, calling `f` with each field number.
    fn fields(
        &mut self,
        mut f: impl FnMut(&mut Self, u64) -> Result<(), GobError>,
    ) -> Result<(), GobError> {
        let mut num: u64 = u64::MAX; // -1
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            num = num.wrapping_add(delta);
            if num > 1 << 20 {
                return bad("field number out of range");
            }
            f(self, num)?;
        }
    }

    fn common_type(&mut self) -> Result<String, GobError> {
        let mut name = String::new();
        self.fields(|d, n| match n {
            0 => {
                name = d.string()?;
                Ok(())
            }
            1 => d.int().map(|_| ()),
            _ => bad("CommonType field"),
        })?;
        Ok(name)
    }

    fn array_type(&mut self) -> Result<Wire, GobError> {
        let (mut elem, mut len) = (0, 0);
        self.fields(|d, n| {
            match n {
                0 => {
                    d.common_type()?;
                }
                1 => elem = d.int()?,
                2 => len = d.int()?,
                _ => return bad("arrayType field"),
            }
            Ok(())
        })?;
        let len = usize::try_from(len).map_err(|_| GobError::Malformed("array length".into()))?;
        Ok(Wire::Array(elem, len))
    }

    fn slice_type(&mut self) -> Result<Wire, GobError> {
        let mut elem = 0;
        self.fields(|d, n| {
            match n {
                0 => {
                    d.common_type()?;
                }
                1 => elem = d.int()?,
                _ => return bad("sliceType field"),
            }
            Ok(())
        })?;
        Ok(Wire::Slice(elem))
    }

    fn map_type(&mut self) -> Result<Wire, GobError> {
        let (mut key, mut elem) = (0, 0);
        self.fields(|d, n| {
            match n {
                0 => {
                    d.common_type()?;
                }
                1 => key = d.int()?,
                2 => elem = d.int()?,
                _ => return bad("mapType field"),
            }
            Ok(())
        })?;
        Ok(Wire::Map(key, elem))
    }

    fn struct_type(&mut self) -> Result<Wire, GobError> {
        let mut name = String::new();
        let mut fields = Vec::new();
        self.fields(|d, n| {
            match n {
                0 => name = d.common_type()?,
                1 => {
                    let count = d.count(1)?;
                    for _ in 0..count {
                        let (mut fname, mut fid) = (String::new(), 0);
                        d.fields(|d, n| {
                            match n {
                                0 => fname = d.string()?,
                                1 => fid = d.int()?,
                                _ => return bad("fieldType field"),
                            }
                            Ok(())
                        })?;
                        fields.push((fname, fid));
                    }
                }
                _ => return bad("structType field"),
            }
            Ok(())
        })?;
        Ok(Wire::Struct(name, fields))
    }

    /// A value of type `id` at top level or inside an interface.
    fn top<R: Read>(
        &mut self,
        src: &mut Source<'_, R>,
        id: i64,
        depth: usize,
    ) -> Result<Value, GobError> {
        if !matches!(self.types.get(&id), Some(Wire::Struct(..))) && self.uint()? != 0 {
            return bad("non-zero delta before a single value");
        }
        self.value(src, id, depth)
    }

    fn value<R: Read>(
        &mut self,
        src: &mut Source<'_, R>,
        id: i64,
        depth: usize,
    ) -> Result<Value, GobError> {
        if depth > MAX_DEPTH {
            return bad("value nests too deeply");
        }
        Ok(match id {
            T_BOOL => Value::Bool(match self.uint()? {
                0 => false,
                1 => true,
                n => return bad(format!("bool value {n}")),
            }),
            T_INT => Value::Int(self.int()?),
            T_UINT => Value::Uint(self.uint()?),
            T_FLOAT => Value::Float(self.float()?),
            T_COMPLEX => Value::Complex(self.float()?, self.float()?),
            T_BYTES => Value::Bytes(self.bytes()?.to_vec()),
            T_STRING => Value::String(self.string()?),
            T_INTERFACE => self.interface(src, depth)?,
            _ => {
                let wire = self
                    .types
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| GobError::Malformed(format!("unknown type id {id}")))?;
                match wire {
                    Wire::Slice(e) => {
                        let n = self.count(1)?;
                        let mut items = Vec::with_capacity(n.min(1024));
                        for _ in 0..n {
                            items.push(self.value(src, e, depth + 1)?);
                        }
                        Value::List(items)
                    }
                    Wire::Array(e, len) => {
                        let n = self.count(1)?;
                        if n != len {
                            return bad(format!("array of {len} has {n} elements"));
                        }
                        let mut items = Vec::with_capacity(n.min(1024));
                        for _ in 0..n {
                            items.push(self.value(src, e, depth + 1)?);
                        }
                        Value::List(items)
                    }
                    Wire::Map(k, e) => {
                        let n = self.count(2)?;
                        let mut entries = Vec::with_capacity(n.min(1024));
                        for _ in 0..n {
                            let kv = self.value(src, k, depth + 1)?;
                            let ev = self.value(src, e, depth + 1)?;
                            entries.push((kv, ev));
                        }
                        Value::Map(entries)
                    }
                    Wire::Struct(_, fields) => {
                        let mut out = Vec::new();
                        let mut num: i64 = -1;
                        loop {
                            let delta = self.uint()?;
                            if delta == 0 {
                                break;
                            }
                            num = num
                                .checked_add(i64::try_from(delta).unwrap_or(i64::MAX))
                                .filter(|n| (*n as usize) < fields.len())
                                .ok_or_else(|| {
                                    GobError::Malformed("field number out of range".into())
                                })?;
                            let (name, fid) = &fields[num as usize];
                            let v = self.value(src, *fid, depth + 1)?;
                            out.push((name.clone(), v));
                        }
                        Value::Struct(out)
                    }
                }
            }
        })
    }

    fn interface<R: Read>(
        &mut self,
        src: &mut Source<'_, R>,
        depth: usize,
    ) -> Result<Value, GobError> {
        let name = self.string()?;
        if name.is_empty() {
            return Ok(Value::Interface(None));
        }
        if name.len() > 1024 {
            return bad("interface type name too long");
        }
        let id = self.type_sequence(src, true)?;
        self.uint()?; // the value's byte count
        let value = self.top(src, id, depth + 1)?;
        let ty = self.type_of(id, 0)?;
        Ok(Value::iface(&name, ty, value))
    }

    /// The [`Type`] of a defined id (for re-encoding decoded interface values).
    fn type_of(&self, id: i64, depth: usize) -> Result<Type, GobError> {
        if depth > MAX_DEPTH {
            return bad("type nests too deeply");
        }
        Ok(match id {
            T_BOOL => Type::Bool,
            T_INT => Type::Int,
            T_UINT => Type::Uint,
            T_FLOAT => Type::Float,
            T_BYTES => Type::Bytes,
            T_STRING => Type::String,
            T_INTERFACE => Type::Interface,
            _ => match self.types.get(&id) {
                Some(Wire::Slice(e)) => Type::slice(self.type_of(*e, depth + 1)?),
                Some(Wire::Array(e, n)) => Type::Array(Box::new(self.type_of(*e, depth + 1)?), *n),
                Some(Wire::Map(k, e)) => {
                    Type::map(self.type_of(*k, depth + 1)?, self.type_of(*e, depth + 1)?)
                }
                Some(Wire::Struct(name, fields)) => {
                    let mut fs = Vec::with_capacity(fields.len());
                    for (n, f) in fields {
                        fs.push((n.clone(), self.type_of(*f, depth + 1)?));
                    }
                    Type::Struct(Arc::new(StructType {
                        name: name.clone(),
                        fields: fs,
                    }))
                }
                None => return bad(format!("unknown type id {id}")),
            },
        })
    }

    fn byte(&mut self) -> Result<u8, GobError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| GobError::Malformed("value runs past its message".into()))?;
        self.pos += 1;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, GobError> {
        let b = self.byte()?;
        if b < 128 {
            return Ok(u64::from(b));
        }
        let n = 256 - usize::from(b);
        if n > 8 {
            return bad("integer wider than 8 bytes");
        }
        let mut u = 0u64;
        for _ in 0..n {
            u = (u << 8) | u64::from(self.byte()?);
        }
        Ok(u)
    }

    fn int(&mut self) -> Result<i64, GobError> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    fn float(&mut self) -> Result<f64, GobError> {
        Ok(f64::from_bits(self.uint()?.swap_bytes()))
    }

    /// An element count, each element taking at least `min` bytes.
    fn count(&mut self, min: usize) -> Result<usize, GobError> {
        let n = self.uint()?;
        if n > (self.remaining() / min) as u64 {
            return bad(format!("count {n} exceeds the message"));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&[u8], GobError> {
        let n = self.uint()?;
        if n > self.remaining() as u64 {
            return bad(format!("length {n} exceeds the message"));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn string(&mut self) -> Result<String, GobError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

/// Where messages come from.
enum Source<'a, R: Read> {
    Reader(&'a mut R),
    Slice(&'a [u8]),
}

impl<R: Read> Source<'_, R> {
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), GobError> {
        match self {
            Source::Reader(r) => r.read_exact(out).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    GobError::Malformed("stream ends inside a message".into())
                }
                _ => GobError::Io(e),
            }),
            Source::Slice(s) => {
                if s.len() < out.len() {
                    return bad("stream ends inside a message");
                }
                let (head, tail) = s.split_at(out.len());
                out.copy_from_slice(head);
                *s = tail;
                Ok(())
            }
        }
    }

    /// A message length; `None` at a clean end of stream.
    fn read_uint(&mut self) -> Result<Option<u64>, GobError> {
        let mut first = [0u8; 1];
        match self {
            Source::Reader(r) => loop {
                match r.read(&mut first) {
                    Ok(0) => return Ok(None),
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(GobError::Io(e)),
                }
            },
            Source::Slice(s) => {
                let Some((b, rest)) = s.split_first() else {
                    return Ok(None);
                };
                first[0] = *b;
                *s = rest;
            }
        }
        if first[0] < 128 {
            return Ok(Some(u64::from(first[0])));
        }
        let n = 256 - usize::from(first[0]);
        if n > 8 {
            return bad("message length wider than 8 bytes");
        }
        let mut bytes = [0u8; 8];
        self.read_exact(&mut bytes[8 - n..])?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex"))
            .collect()
    }

    fn flag_type() -> Type {
        Type::structure(
            "StringFlag",
            &[
                ("Name", Type::String),
                ("Usage", Type::String),
                ("EnvVar", Type::String),
                ("Value", Type::String),
            ],
        )
    }

    #[test]
    fn integers_as_go_writes_them() {
        let cases: &[(u64, &str)] = &[
            (0, "00"),
            (7, "07"),
            (127, "7f"),
            (128, "ff 80"),
            (256, "fe 01 00"),
            (u64::MAX, "f8 ff ff ff ff ff ff ff ff"),
        ];
        for (u, h) in cases {
            let mut out = Vec::new();
            put_uint(&mut out, *u);
            assert_eq!(out, hex(h), "{u}");
            let mut d = Decoder {
                buf: out,
                ..Decoder::default()
            };
            assert_eq!(d.uint().expect("uint"), *u);
        }
        for i in [0i64, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_int(&mut out, i);
            let mut d = Decoder {
                buf: out,
                ..Decoder::default()
            };
            assert_eq!(d.int().expect("int"), i);
        }
        let mut out = Vec::new();
        put_int(&mut out, -65);
        assert_eq!(out, hex("ff 81"));
        for f in [0.0f64, 1.5, -17.25, f64::MAX] {
            let mut out = Vec::new();
            put_float(&mut out, f);
            let mut d = Decoder {
                buf: out,
                ..Decoder::default()
            };
            assert_eq!(d.float().expect("float"), f);
        }
    }

    // Streams written by Go 1.19's encoding/gob (see the package docs for
    // the layouts): an int, a byte slice, an empty struct, a slice of
    // interface values holding *mcnflag.StringFlag and mcnflag.BoolFlag, and
    // an RPCFlags value sent through an interface with a []string inside (its
    // type definitions come in the middle of the value).
    const GO_INT: &str = "03 04 00 06";
    const GO_BYTES: &str = "05 0a 00 02 68 69";
    const GO_FLAGS_LIST: &str = "0c ff 87 02 01 02 ff 88 00 01 10 00 00 58 ff 88 00 02 13 2a 6d 63 6e 66 6c 61 67 2e 53 74 72 69 6e 67 46 6c 61 67 ff 89 03 01 01 0a 53 74 72 69 6e 67 46 6c 61 67 01 ff 8a 00 01 04 01 04 4e 61 6d 65 01 0c 00 01 05 55 73 61 67 65 01 0c 00 01 06 45 6e 76 56 61 72 01 0c 00 01 05 56 61 6c 75 65 01 0c 00 00 00 50 ff 8a 07 01 01 6e 03 01 76 00 11 2a 6d 63 6e 66 6c 61 67 2e 42 6f 6f 6c 46 6c 61 67 ff 8b 03 01 01 08 42 6f 6f 6c 46 6c 61 67 01 ff 8c 00 01 03 01 04 4e 61 6d 65 01 0c 00 01 05 55 73 61 67 65 01 0c 00 01 06 45 6e 76 56 61 72 01 0c 00 00 00 07 ff 8c 04 01 01 62 00";
    const GO_EMPTY: &str = "0a ff 8d 03 01 02 ff 8e 00 00 00 03 ff 8e 00";
    const GO_RPCFLAGS: &str = "38 10 00 13 2a 72 70 63 64 72 69 76 65 72 2e 52 50 43 46 6c 61 67 73 ff 81 03 01 01 08 52 50 43 46 6c 61 67 73 01 ff 82 00 01 01 01 06 56 61 6c 75 65 73 01 ff 84 00 00 00 27 ff 83 04 01 01 17 6d 61 70 5b 73 74 72 69 6e 67 5d 69 6e 74 65 72 66 61 63 65 20 7b 7d 01 ff 84 00 01 0c 01 10 00 00 25 ff 82 19 01 01 01 61 08 5b 5d 73 74 72 69 6e 67 ff 85 02 01 02 ff 86 00 01 0c 00 00 08 ff 86 04 00 01 01 78 00";

    #[test]
    fn decodes_what_go_writes() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode_all(&hex(GO_INT)).expect("int"),
            vec![Value::Int(3)]
        );
        let mut d = Decoder::new();
        assert_eq!(
            d.decode_all(&hex(GO_BYTES)).expect("bytes"),
            vec![Value::Bytes(b"hi".to_vec())]
        );
        let mut d = Decoder::new();
        assert_eq!(
            d.decode_all(&hex(GO_EMPTY)).expect("empty"),
            vec![Value::Struct(vec![])]
        );

        let mut d = Decoder::new();
        let v = d.decode_all(&hex(GO_FLAGS_LIST)).expect("flags");
        let Value::List(items) = &v[0] else {
            panic!("{v:?}")
        };
        let Value::Interface(Some(first)) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(first.name, "*mcnflag.StringFlag");
        assert_eq!(first.value.str_field("Name"), "n");
        assert_eq!(first.value.str_field("Value"), "v");
        assert_eq!(first.value.str_field("Usage"), "");
        let Value::Interface(Some(second)) = &items[1] else {
            panic!("{items:?}")
        };
        assert_eq!(second.name, "*mcnflag.BoolFlag");
        assert_eq!(second.value.str_field("Name"), "b");

        let mut d = Decoder::new();
        let v = d.decode_all(&hex(GO_RPCFLAGS)).expect("rpcflags");
        let Value::Interface(Some(i)) = &v[0] else {
            panic!("{v:?}")
        };
        assert_eq!(i.name, "*rpcdriver.RPCFlags");
        let Some(Value::Map(m)) = i.value.field("Values") else {
            panic!("{i:?}")
        };
        assert_eq!(m[0].0, Value::String("a".into()));
        let Value::Interface(Some(list)) = &m[0].1 else {
            panic!("{m:?}")
        };
        assert_eq!(list.name, "[]string");
        assert_eq!(list.value, Value::List(vec![Value::String("x".into())]));
    }

    #[test]
    fn encodes_what_go_writes_for_builtins() {
        let mut e = Encoder::new();
        assert_eq!(
            e.encode(&Type::Int, &Value::Int(3)).expect("int"),
            hex(GO_INT)
        );
        assert_eq!(
            e.encode(&Type::Bytes, &Value::Bytes(b"hi".to_vec()))
                .expect("bytes"),
            hex(GO_BYTES)
        );
        // the definition of struct{} is sent once per stream
        let empty = Type::structure("", &[]);
        let first = e.encode(&empty, &Value::Struct(vec![])).expect("empty");
        let again = e.encode(&empty, &Value::Struct(vec![])).expect("empty");
        assert!(first.len() > again.len());
        assert_eq!(again.len(), 4);
    }

    #[test]
    fn round_trips_every_protocol_shape() {
        let flags = Type::structure(
            "RPCFlags",
            &[("Values", Type::map(Type::String, Type::Interface))],
        );
        let values = Value::Struct(vec![(
            "Values".into(),
            Value::Map(vec![
                (
                    Value::String("s".into()),
                    Value::iface("string", Type::String, Value::String("v".into())),
                ),
                (
                    Value::String("i".into()),
                    Value::iface("int", Type::Int, Value::Int(-42)),
                ),
                (
                    Value::String("b".into()),
                    Value::iface("bool", Type::Bool, Value::Bool(true)),
                ),
                (
                    Value::String("f".into()),
                    Value::iface("bool", Type::Bool, Value::Bool(false)),
                ),
                (
                    Value::String("l".into()),
                    Value::iface(
                        "[]string",
                        Type::slice(Type::String),
                        Value::List(vec![Value::String("a".into()), Value::String("b".into())]),
                    ),
                ),
                (Value::String("n".into()), Value::Interface(None)),
            ]),
        )]);
        let wrapped = Value::iface("*rpcdriver.RPCFlags", flags.clone(), values.clone());
        let list = Value::List(vec![
            Value::iface(
                "*mcnflag.StringFlag",
                flag_type(),
                Value::Struct(vec![
                    ("Name".into(), Value::String("x-name".into())),
                    ("Value".into(), Value::String("dflt".into())),
                ]),
            ),
            Value::iface("*mcnflag.StringFlag", flag_type(), Value::Struct(vec![])),
        ]);
        let mut e = Encoder::new();
        let mut bytes = e.encode(&Type::Interface, &wrapped).expect("flags");
        bytes.extend(
            e.encode(&Type::slice(Type::Interface), &list)
                .expect("list"),
        );
        bytes.extend(e.encode(&Type::Interface, &wrapped).expect("flags again"));
        bytes.extend(e.encode(&Type::Uint, &Value::Uint(1 << 40)).expect("uint"));
        let mut d = Decoder::new();
        let got = d.decode_all(&bytes).expect("decode");
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], wrapped);
        assert_eq!(got[2], wrapped);
        assert_eq!(got[3], Value::Uint(1 << 40));
        let Value::List(items) = &got[1] else {
            panic!()
        };
        let Value::Interface(Some(f)) = &items[0] else {
            panic!()
        };
        assert_eq!(f.value.str_field("Name"), "x-name");
        assert_eq!(f.value.str_field("Usage"), "");
        // the stream reader reads the same values one by one
        let mut d = Decoder::new();
        let mut r = &bytes[..];
        assert_eq!(d.read(&mut r).expect("first"), wrapped);
        d.read(&mut r).expect("second");
        d.read(&mut r).expect("third");
        d.read(&mut r).expect("fourth");
        assert!(matches!(d.read(&mut r), Err(GobError::Eof)));
    }

    #[test]
    fn rejects_values_that_do_not_fit() {
        let mut e = Encoder::new();
        assert!(e.encode(&Type::Int, &Value::String("x".into())).is_err());
        let st = Type::structure("S", &[("A", Type::Int)]);
        assert!(e
            .encode(&st, &Value::Struct(vec![("B".into(), Value::Int(1))]))
            .is_err());
        assert!(e
            .encode(
                &Type::Interface,
                &Value::iface("", Type::Int, Value::Int(1))
            )
            .is_err());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: &[&str] = &[
            "",                  // empty: clean end
            "05 0a 00 09 68 69", // bytes longer than the message
            "03 ff 81 00",       // empty type definition
            "02 ff 10",          // reserved id
            "03 04 01 06",       // singleton with a non-zero delta
            "04 ff 8e 00 00",    // undefined type
            "ff 7f",             // absurd length
            "f0",                // length wider than 8 bytes
            "02 03 00",          // uint with nothing after
            "03 02 00 ff",       // truncated int
        ];
        for c in cases {
            let mut d = Decoder::new();
            let r = d.decode_all(&hex(c));
            if c.is_empty() {
                assert_eq!(r.expect("empty stream"), vec![]);
            } else {
                assert!(r.is_err(), "{c}: {r:?}");
            }
        }
        // deep nesting of interfaces ends with an error
        let mut e = Encoder::new();
        let mut v = Value::Int(1);
        let mut ty = Type::Int;
        for _ in 0..200 {
            v = Value::iface("x", ty, v);
            ty = Type::Interface;
        }
        assert!(e.encode(&Type::Interface, &v).is_err());
    }
}
