//! `#[manhole::expose]`: register a static or a function with the console.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, Item, ItemFn, ItemStatic, LitStr, Pat, ReturnType, Type};

/// The arguments of the attribute.
#[derive(Default)]
struct Args {
    writable: Option<Span>,
    name: Option<LitStr>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let parsed = syn::parse2::<Item>(item.clone());
    let result = parse_args(args).and_then(|args| match &parsed {
        Ok(Item::Static(item)) => expose_static(item, &args),
        Ok(Item::Fn(item)) => expose_fn(item, &args),
        Ok(other) => Err(syn::Error::new_spanned(
            item_keyword(other),
            "#[manhole::expose] goes on a `static` or a free `fn`",
        )),
        Err(_) => Err(syn::Error::new(
            Span::call_site(),
            "#[manhole::expose] goes on a `static` or a free `fn`",
        )),
    });
    match result {
        Ok(registration) => {
            let mut out = item;
            out.extend(registration);
            out
        }
        Err(error) => {
            let mut out = item;
            out.extend(error.into_compile_error());
            out
        }
    }
}

/// The token to point at when the item is of the wrong kind.
pub(crate) fn item_keyword(item: &Item) -> TokenStream {
    match item {
        Item::Const(c) => c.const_token.into_token_stream(),
        Item::Struct(s) => s.struct_token.into_token_stream(),
        Item::Enum(e) => e.enum_token.into_token_stream(),
        Item::Impl(i) => i.impl_token.into_token_stream(),
        Item::Mod(m) => m.mod_token.into_token_stream(),
        Item::Trait(t) => t.trait_token.into_token_stream(),
        Item::Type(t) => t.type_token.into_token_stream(),
        other => other.to_token_stream(),
    }
}

fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let mut parsed = Args::default();
    let mut errors: Option<syn::Error> = None;
    let mut report = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("writable") {
            if parsed.writable.is_some() {
                report(meta.error("duplicate `writable`"));
            }
            parsed.writable = Some(meta.path.span());
            Ok(())
        } else if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            let text = name.value();
            if parsed.name.is_some() {
                report(meta.error("duplicate `name`"));
            } else if text.is_empty() || !text.chars().all(|c| c.is_alphanumeric() || c == '_') {
                report(syn::Error::new(
                    name.span(),
                    "`name` takes letters, digits and underscores, like \"cache_size\"",
                ));
            }
            parsed.name = Some(name);
            Ok(())
        } else {
            report(meta.error("unknown argument; expected `writable` or `name = \"…\"`"));
            if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        }
    });
    parser.parse2(args)?;
    match errors {
        Some(errors) => Err(errors),
        None => Ok(parsed),
    }
}

/// The first line of the item's doc comment.
fn first_doc_line(attrs: &[syn::Attribute]) -> String {
    for attr in attrs {
        if attr.path().is_ident("doc")
            && let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(text),
                ..
            }) = &nv.value
        {
            let line = text.value().trim().to_owned();
            if !line.is_empty() {
                return line;
            }
        }
    }
    String::new()
}

/// A type as a reader writes it: `Mutex<String>`, not `Mutex < String >`.
fn type_text(ty: &impl ToTokens) -> String {
    let text = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let tight = matches!(prev, Some('<' | '&' | ':' | '(' | '['))
                || matches!(next, Some('<' | '>' | ':' | ',' | ';' | ')' | ']'));
            if tight {
                continue;
            }
        }
        out.push(*c);
    }
    out
}

fn expose_static(item: &ItemStatic, args: &Args) -> syn::Result<TokenStream> {
    if let syn::StaticMutability::Mut(token) = &item.mutability {
        return Err(syn::Error::new_spanned(
            token,
            "#[manhole::expose] cannot expose a `static mut`: reading it from the console would race with the program; use an atomic, a Mutex or a RwLock",
        ));
    }
    let ident = &item.ident;
    let ty = &item.ty;
    let name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), LitStr::value);
    let type_name = type_text(ty);
    let doc = first_doc_line(&item.attrs);
    // Spanned on the type, so a missing Debug, Sync or Settable points at it.
    let get = quote_spanned! {ty.span()=>
        fn __manhole_get() -> &'static (dyn ::core::fmt::Debug + ::core::marker::Sync) {
            &#ident
        }
    };
    // Picks, by the static's type, a reader that takes a lock's guard itself and never forces
    // a `LazyLock` (autoref specialisation; see `manhole::__private::Probe`).
    let show = quote! {
        fn __manhole_show() -> ::manhole::__private::Shown {
            #[allow(unused_imports)]
            use ::manhole::__private::{ShowAny as _, ShowCellLock as _, ShowLockOrCell as _};
            (&&&::manhole::__private::Probe(&#ident)).show(__manhole_get)
        }
    };
    let (set_fn, set) = match args.writable {
        Some(_) => (
            quote_spanned! {ty.span()=>
                fn __manhole_set(
                    text: &str,
                ) -> ::core::result::Result<(::std::string::String, ::std::string::String), ::manhole::__private::SetError> {
                    ::manhole::__private::Settable::set_from_str(&#ident, text)
                }
            },
            quote!(::core::option::Option::Some(__manhole_set)),
        ),
        None => (TokenStream::new(), quote!(::core::option::Option::None)),
    };
    Ok(quote! {
        const _: () = {
            #get
            #show
            #set_fn
            ::manhole::__private::inventory::submit! {
                ::manhole::__private::Exposed {
                    name: #name,
                    type_name: #type_name,
                    module_path: ::core::module_path!(),
                    doc: #doc,
                    kind: ::manhole::__private::Kind::Value {
                        get: __manhole_get,
                        show: __manhole_show,
                        set: #set,
                    },
                }
            }
        };
    })
}

fn expose_fn(item: &ItemFn, args: &Args) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if let Some(span) = args.writable {
        errors.push(syn::Error::new(
            span,
            "`writable` applies to statics; functions are run with `call`",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics.params,
            "#[manhole::expose] cannot expose a generic function: the console cannot choose its types",
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        errors.push(syn::Error::new_spanned(
            asyncness,
            "#[manhole::expose] cannot expose an `async fn` yet",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "#[manhole::expose] cannot expose an `unsafe fn`",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "#[manhole::expose] cannot expose a variadic function",
        ));
    }
    let ident = &sig.ident;
    let function_name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), LitStr::value);
    let mut params = Vec::new();
    let mut parses = Vec::new();
    let mut passes = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "#[manhole::expose] cannot expose a method: there is no value to call it on; expose a free function",
                ));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let param_name = match &*typed.pat {
            Pat::Ident(pat) => pat.ident.to_string(),
            _ => format!("arg{index}"),
        };
        let ty = &*typed.ty;
        let var = syn::Ident::new(&format!("__manhole_arg{index}"), Span::call_site());
        let (parse_ty, pass) = match ty {
            // `&str` is the one reference a console can give: parse a String, lend it.
            Type::Reference(r) if r.mutability.is_none() && type_text(&r.elem) == "str" => {
                (quote!(::std::string::String), quote!(&#var))
            }
            Type::Reference(r) => {
                errors.push(syn::Error::new_spanned(
                    r,
                    "#[manhole::expose] functions take values parsed from text (FromStr) or `&str`; other references cannot be given from the console",
                ));
                continue;
            }
            ty => (ty.to_token_stream(), quote!(#var)),
        };
        let type_name = type_text(ty);
        params.push(quote!(::manhole::__private::Param { name: #param_name, type_name: #type_name }));
        parses.push(quote_spanned! {ty.span()=>
            let #var: #parse_ty = ::manhole::__private::parse_arg::<#parse_ty>(#function_name, #param_name, &args[#index])?;
        });
        passes.push(pass);
    }
    if let Some(first) = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        return Err(first);
    }
    let count = params.len();
    let (return_name, output_span) = match &sig.output {
        ReturnType::Default => ("()".to_owned(), sig.ident.span()),
        ReturnType::Type(_, ty) => (type_text(ty), ty.span()),
    };
    let doc = first_doc_line(&item.attrs);
    let render = quote_spanned! {output_span=>
        (&::manhole::__private::CallOutput(__manhole_out)).render()
    };
    Ok(quote! {
        const _: () = {
            fn __manhole_call(
                args: &[::std::string::String],
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                #[allow(unused_imports)]
                use ::manhole::__private::{RenderDebug as _, RenderResult as _};
                if args.len() != #count {
                    return ::core::result::Result::Err(::std::format!(
                        "{} takes {} argument(s), got {}", #function_name, #count, args.len()
                    ));
                }
                #(#parses)*
                let __manhole_out = #ident(#(#passes),*);
                #render
            }
            ::manhole::__private::inventory::submit! {
                ::manhole::__private::Exposed {
                    name: #function_name,
                    type_name: #return_name,
                    module_path: ::core::module_path!(),
                    doc: #doc,
                    kind: ::manhole::__private::Kind::Function {
                        params: &[#(#params),*],
                        call: __manhole_call,
                    },
                }
            }
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_written() {
        let ty: Type = syn::parse_quote!(std::sync::Mutex<Vec<(u8, String)>>);
        assert_eq!(type_text(&ty), "std::sync::Mutex<Vec<(u8, String)>>");
        let ty: Type = syn::parse_quote!(&'static [u8; 4]);
        assert_eq!(type_text(&ty), "&'static [u8; 4]");
    }
}
