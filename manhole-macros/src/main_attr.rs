//! `#[manhole::main(…)]`: parse the function and the options into a typed [`MainConfig`], check
//! the combinations, then expand into the install at the start of the function.
//!
//! The function's body is not parsed: it is carried through as tokens, so a syntax error in it
//! is rustc's to report, at its token, and the body's inner attributes (`#![allow(…)]`) stay
//! at the top of the body.

use std::time::Duration;

use manhole_spec::{KEYS, Key, Mask, SHUTDOWN_SIGNALS};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Ident, Item, Lit, LitBool, LitInt, LitStr, Signature, Visibility, token};

use crate::signals;

const NOT_A_FUNCTION: &str = "#[manhole::main] goes on a function, usually `fn main`";
const DURATION: &str = "a duration as a string: \"500ms\", \"30s\", \"5m\" or \"1h\"";
const SIGMASK: &str = "\"all\", \"none\", or signal names joined by |, like \"TERM|INT\"";

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse2::<MainFn>(item.clone()) {
        Ok(function) => function,
        Err(error) => {
            let error = not_a_function(item.clone(), error);
            return with_error(item, error);
        }
    };
    match parse(args).and_then(check) {
        Ok(config) => install_first(function, &config),
        Err(error) => with_error(item, error),
    }
}

/// A function as `#[manhole::main]` needs it: its outer attributes and signature parsed, the
/// inner attributes at the top of its body apart, and the rest of the body left as tokens.
struct MainFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    brace: token::Brace,
    inner_attrs: Vec<Attribute>,
    body: TokenStream,
}

impl Parse for MainFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(MainFn {
            attrs,
            vis,
            sig,
            brace,
            inner_attrs,
            body,
        })
    }
}

/// The error for an item that is not a function with a body: ours when it is another kind of
/// item, else syn's, which points at what does not parse.
fn not_a_function(item: TokenStream, error: syn::Error) -> syn::Error {
    match syn::parse2::<Item>(item) {
        Ok(Item::Fn(_)) | Err(_) => error,
        Ok(other) => syn::Error::new_spanned(crate::expose::item_keyword(&other), NOT_A_FUNCTION),
    }
}

/// The user's item unchanged, plus the errors: the IDE keeps working on the item.
fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut out = item;
    out.extend(error.into_compile_error());
    out
}

/// The options, checked one by one, in the order they were written.
struct MainConfig {
    settings: Vec<Setting>,
}

/// One option: its key (with the span of the key as written) and its checked value.
struct Setting {
    key: Key,
    span: Span,
    value: Value,
}

/// A checked option value, typed by what the option takes.
enum Value {
    Path(LitStr),
    Signal(SignalArg),
    Flag(LitBool),
    Count(LitInt),
    Duration(Duration),
    Destination(Destination),
    Mask(MaskArg),
}

/// A signal as written: a name (canonical `SIGNAME`) or a number (checked on the target).
struct SignalArg {
    written: SignalWritten,
    span: Span,
}

enum SignalWritten {
    Name(String),
    Number(LitInt),
}

impl SignalArg {
    /// How it is shown in messages, and compared: `SIGUSR1`, or the number.
    fn shown(&self) -> String {
        match &self.written {
            SignalWritten::Name(name) => name.clone(),
            SignalWritten::Number(number) => number.base10_digits().to_owned(),
        }
    }
}

enum Destination {
    Fd(LitInt),
    Stderr,
    Log,
    Path(LitStr),
}

enum MaskArg {
    All,
    None,
    /// Names upper case, without `SIG`.
    Only(Vec<String>),
}

impl MainConfig {
    fn get(&self, key: Key) -> Option<&Value> {
        self.settings.iter().find(|s| s.key == key).map(|s| &s.value)
    }

    fn signal(&self, key: Key) -> Option<&SignalArg> {
        match self.get(key) {
            Some(Value::Signal(signal)) => Some(signal),
            _ => None,
        }
    }

    fn flag(&self, key: Key) -> Option<bool> {
        match self.get(key) {
            Some(Value::Flag(flag)) => Some(flag.value),
            _ => None,
        }
    }
}

fn parse(args: TokenStream) -> syn::Result<MainConfig> {
    let mut settings: Vec<Setting> = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut report = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let parser = syn::meta::parser(|meta| {
        let Some(ident) = meta.path.get_ident().cloned() else {
            report(meta.error(format!("unknown option; expected one of: {}", KEYS.join(", "))));
            return skip_value(&meta);
        };
        let name = ident.to_string();
        let Some(key) = Key::from_name(&name) else {
            report(unknown_key(&ident, &name));
            return skip_value(&meta);
        };
        let value: Lit = meta.value()?.parse()?;
        if settings.iter().any(|s| s.key == key) {
            report(syn::Error::new(
                ident.span(),
                format!("duplicate option `{name}`"),
            ));
            return Ok(());
        }
        match value_of(key, &value) {
            Ok(value) => settings.push(Setting {
                key,
                span: ident.span(),
                value,
            }),
            Err(error) => report(error),
        }
        Ok(())
    });
    parser.parse2(args)?;
    match errors {
        Some(errors) => Err(errors),
        None => Ok(MainConfig { settings }),
    }
}

fn unknown_key(ident: &Ident, name: &str) -> syn::Error {
    let message = if name == "local" {
        "`local` takes a value of the running program, not a literal; use Options::local with manhole::install"
            .to_owned()
    } else {
        format!("unknown option `{name}`; expected one of: {}", KEYS.join(", "))
    };
    syn::Error::new(ident.span(), message)
}

/// Consumes `= value` after a rejected key, so that later keys are still checked.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    }
    Ok(())
}

/// `` `key` takes … ``, on the value.
fn wrong(key: Key, value: &Lit, expected: &str) -> syn::Error {
    syn::Error::new(value.span(), format!("`{key}` takes {expected}"))
}

fn value_of(key: Key, value: &Lit) -> syn::Result<Value> {
    match key {
        Key::SocketPath => match value {
            Lit::Str(path) if !path.value().is_empty() => Ok(Value::Path(path.clone())),
            _ => Err(wrong(
                key,
                value,
                "a path as a non-empty string, like \"/run/app/manhole.sock\"",
            )),
        },
        Key::ActivateOn | Key::OneshotOn | Key::StackSignal => signal_value(key, value).map(Value::Signal),
        Key::Thread
        | Key::PatchFork
        | Key::Strict
        | Key::Verbose
        | Key::DaemonConnection
        | Key::RedirectStderr => match value {
            Lit::Bool(flag) => Ok(Value::Flag(flag.clone())),
            _ => Err(wrong(key, value, "true or false")),
        },
        Key::MaxSessions => match value {
            Lit::Int(number) if number.base10_parse::<usize>().is_ok_and(|n| n > 0) => {
                Ok(Value::Count(number.clone()))
            }
            _ => Err(wrong(key, value, "a whole number greater than 0")),
        },
        Key::ReinstallDelay | Key::IdleTimeout | Key::OneshotTimeout => match value {
            Lit::Str(text) => manhole_spec::parse_duration(&text.value())
                .map(Value::Duration)
                .map_err(|_| wrong(key, value, DURATION)),
            _ => Err(wrong(key, value, DURATION)),
        },
        Key::VerboseDestination => destination_value(value).map(Value::Destination).ok_or_else(|| {
            wrong(
                key,
                value,
                "a file descriptor number, \"stderr\", \"log\" or a file path",
            )
        }),
        Key::Sigmask => sigmask_value(key, value).map(Value::Mask),
    }
}

fn signal_value(key: Key, value: &Lit) -> syn::Result<SignalArg> {
    let written = match value {
        Lit::Str(text) => SignalWritten::Name(
            signals::check_name(&text.value()).map_err(|e| syn::Error::new(text.span(), e))?,
        ),
        Lit::Int(number) => {
            let n: u64 = number.base10_parse()?;
            signals::check_number(n).map_err(|e| syn::Error::new(number.span(), e))?;
            SignalWritten::Number(number.clone())
        }
        _ => {
            return Err(wrong(
                key,
                value,
                "a signal name like \"USR1\" or \"SIGUSR1\", or its number",
            ));
        }
    };
    // By name, or by a number that is the same shutdown signal on every target.
    let (named, shown) = match &written {
        SignalWritten::Name(name) => (Some(name.clone()), name.clone()),
        SignalWritten::Number(number) => (
            number
                .base10_parse()
                .ok()
                .and_then(signals::same_everywhere)
                .map(|bare| format!("SIG{bare}")),
            number.base10_digits().to_owned(),
        ),
    };
    if let (Key::ActivateOn | Key::OneshotOn, Some(name)) = (key, named) {
        let bare = name.strip_prefix("SIG").unwrap_or(&name);
        if SHUTDOWN_SIGNALS.contains(&bare) {
            return Err(syn::Error::new(
                value.span(),
                format!(
                    "`{key}` cannot take {shown}: it must keep ending the process; use USR1, USR2 or RTMIN+N"
                ),
            ));
        }
    }
    Ok(SignalArg {
        written,
        span: value.span(),
    })
}

fn destination_value(value: &Lit) -> Option<Destination> {
    match value {
        Lit::Int(fd) if fd.base10_parse::<i32>().is_ok_and(|fd| fd >= 0) => Some(Destination::Fd(fd.clone())),
        Lit::Str(text) => match text.value().as_str() {
            "log" => Some(Destination::Log),
            "stderr" => Some(Destination::Stderr),
            "" => None,
            _ => Some(Destination::Path(text.clone())),
        },
        _ => None,
    }
}

fn sigmask_value(key: Key, value: &Lit) -> syn::Result<MaskArg> {
    let Lit::Str(text) = value else {
        return Err(wrong(key, value, SIGMASK));
    };
    let list = text.value();
    let names = match manhole_spec::parse_sigmask(&list) {
        Mask::All => return Ok(MaskArg::All),
        Mask::None => return Ok(MaskArg::None),
        Mask::Only(names) => names,
    };
    if names.is_empty() {
        return Err(wrong(key, value, SIGMASK));
    }
    names
        .into_iter()
        .map(|name| {
            let bare = manhole_spec::bare_name(name);
            if signals::is_known(&bare) {
                Ok(bare)
            } else {
                Err(syn::Error::new(
                    text.span(),
                    format!("unknown signal {name:?} in sigmask"),
                ))
            }
        })
        .collect::<syn::Result<Vec<String>>>()
        .map(MaskArg::Only)
}

/// Checks combinations: one signal cannot both activate and serve one-shot sessions, and manual
/// mode cannot wait for a signal to listen.
fn check(config: MainConfig) -> syn::Result<MainConfig> {
    let manual = config.flag(Key::Thread) == Some(false);
    let conflict = match (config.signal(Key::ActivateOn), config.signal(Key::OneshotOn)) {
        (Some(activate), Some(oneshot)) if activate.shown() == oneshot.shown() => Some((
            oneshot.span,
            format!(
                "activate_on and oneshot_on are both {}; one signal cannot both start the listener and serve a single session",
                activate.shown()
            ),
        )),
        (Some(_), Some(oneshot)) => Some((
            oneshot.span,
            "activate_on and oneshot_on cannot be combined: one listens for good once activated, the other serves one session per signal"
                .to_owned(),
        )),
        (Some(activate), None) if manual => Some((
            activate.span,
            "thread = false is manual mode (handle_oneshot); it cannot wait for activate_on".to_owned(),
        )),
        _ => None,
    };
    match conflict {
        Some((span, message)) => Err(syn::Error::new(span, message)),
        None => Ok(config),
    }
}

/// The builder call an option becomes: `.key(value)`.
fn builder_call(setting: &Setting) -> TokenStream {
    let method = format_ident!("{}", setting.key.name(), span = setting.span);
    let arg = match &setting.value {
        Value::Path(path) => path.to_token_stream(),
        Value::Signal(signal) => match &signal.written {
            SignalWritten::Name(name) => LitStr::new(name, signal.span).to_token_stream(),
            SignalWritten::Number(number) => number.to_token_stream(),
        },
        Value::Flag(flag) => flag.to_token_stream(),
        Value::Count(count) => count.to_token_stream(),
        Value::Duration(duration) => {
            let secs = Literal::u64_unsuffixed(duration.as_secs());
            let nanos = Literal::u32_unsuffixed(duration.subsec_nanos());
            quote!(::core::time::Duration::new(#secs, #nanos))
        }
        Value::Destination(Destination::Fd(fd)) => fd.to_token_stream(),
        Value::Destination(Destination::Stderr) => quote!(::manhole::VerboseDestination::Stderr),
        Value::Destination(Destination::Log) => quote!(::manhole::VerboseDestination::Log),
        Value::Destination(Destination::Path(path)) => path.to_token_stream(),
        Value::Mask(MaskArg::All) => quote!(::manhole::SigMask::all()),
        Value::Mask(MaskArg::None) => quote!(::manhole::SigMask::none()),
        Value::Mask(MaskArg::Only(names)) => quote!(::manhole::SigMask::only([#(#names),*])),
    };
    quote!(.#method(#arg))
}

fn install_first(function: MainFn, config: &MainConfig) -> TokenStream {
    let MainFn {
        attrs,
        vis,
        sig,
        brace,
        inner_attrs,
        body,
    } = function;
    let calls = config.settings.iter().map(builder_call);
    let prologue = quote_spanned! {sig.ident.span()=>
        ::manhole::__private::main_prologue(::manhole::Options::new() #(#calls)*);
    };
    let mut out = quote!(#(#attrs)* #vis #sig);
    brace.surround(&mut out, |block| {
        block.extend(quote!(#(#inner_attrs)* #prologue));
        block.extend(body);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn inner_attributes_stay_in_the_body() {
        let out = expanded(
            quote!(),
            quote!(
                #[inline(never)]
                fn main() {
                    #![allow(unused)]
                    let x = 1;
                }
            ),
        );
        let body = out.find('{').unwrap();
        let inner = out.find("# ! [allow (unused)]").unwrap();
        let prologue = out.find("main_prologue").unwrap();
        assert!(out.starts_with("# [inline (never)] fn main ()"), "{out}");
        assert!(body < inner && inner < prologue, "{out}");
        assert!(out.find("let x").unwrap() > prologue, "{out}");
    }

    #[test]
    fn a_body_that_does_not_parse_is_carried_through() {
        let out = expanded(quote!(), quote!(fn main() { let x = ; }));
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains("main_prologue") && out.contains("let x = ;"),
            "{out}"
        );
    }

    #[test]
    fn another_item_is_refused_on_its_keyword() {
        let out = expanded(
            quote!(),
            quote!(
                struct Service;
            ),
        );
        assert!(out.contains("goes on a function"), "{out}");
    }

    #[test]
    fn options_become_typed_builder_calls() {
        let out = expanded(
            quote!(
                thread = false,
                idle_timeout = "90s",
                reinstall_delay = "250ms",
                sigmask = "sigterm|INT"
            ),
            quote!(
                fn main() {}
            ),
        );
        assert!(out.contains(". thread (false)"), "{out}");
        assert!(
            out.contains(". idle_timeout (:: core :: time :: Duration :: new (90 , 0))"),
            "{out}"
        );
        assert!(out.contains("Duration :: new (0 , 250000000)"), "{out}");
        assert!(out.contains("SigMask :: only ([\"TERM\" , \"INT\"])"), "{out}");
    }

    #[test]
    fn manual_mode_is_read_from_the_flag_not_from_tokens() {
        let refused = expanded(
            quote!(thread = false, activate_on = "USR1"),
            quote!(
                fn main() {}
            ),
        );
        assert!(refused.contains("thread = false is manual mode"), "{refused}");
        // Only `thread = false` is manual: another option set to false is not.
        let accepted = expanded(
            quote!(thread = true, verbose = false, activate_on = "USR1"),
            quote!(
                fn main() {}
            ),
        );
        assert!(!accepted.contains("compile_error"), "{accepted}");
    }
}
