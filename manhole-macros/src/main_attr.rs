//! `#[manhole::main(…)]`: parse the options, check them, and install manhole at the start of
//! the function.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::Parser;
use syn::{Ident, ItemFn, Lit, LitStr};

use crate::signals;

/// Every key, in the order of the documentation.
const KEYS: &[&str] = &[
    "socket_path",
    "activate_on",
    "oneshot_on",
    "thread",
    "patch_fork",
    "reinstall_delay",
    "strict",
    "verbose",
    "verbose_destination",
    "sigmask",
    "daemon_connection",
    "redirect_stderr",
    "max_sessions",
    "idle_timeout",
    "oneshot_timeout",
    "stack_signal",
];

/// One checked option: the builder call it becomes.
struct Setting {
    key: Ident,
    call: TokenStream,
    /// For signal options: the canonical name, to compare activate_on and oneshot_on.
    signal: Option<(String, Span)>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let message = "#[manhole::main] goes on a function, usually `fn main`";
            let error = match syn::parse2::<syn::Item>(item.clone()) {
                Ok(other) => syn::Error::new_spanned(crate::expose::item_keyword(&other), message),
                Err(_) => syn::Error::new(Span::call_site(), message),
            };
            return with_error(item, error);
        }
    };
    match parse(args).and_then(check) {
        Ok(settings) => install_first(function, &settings),
        Err(error) => with_error(function.into_token_stream(), error),
    }
}

/// The user's item unchanged, plus the errors: the IDE keeps working on the item.
fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let mut out = item;
    out.extend(error.into_compile_error());
    out
}

fn parse(args: TokenStream) -> syn::Result<Vec<Setting>> {
    let mut settings: Vec<Setting> = Vec::new();
    let mut errors: Option<syn::Error> = None;
    let mut report = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    let parser = syn::meta::parser(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            report(meta.error(format!("unknown option; expected one of: {}", KEYS.join(", "))));
            return skip_value(&meta);
        };
        let name = key.to_string();
        if name == "local" {
            report(syn::Error::new(
                key.span(),
                "`local` takes a value of the running program, not a literal; use Options::local with manhole::install",
            ));
            return skip_value(&meta);
        }
        if !KEYS.contains(&name.as_str()) {
            report(syn::Error::new(
                key.span(),
                format!("unknown option `{name}`; expected one of: {}", KEYS.join(", ")),
            ));
            return skip_value(&meta);
        }
        let value: Lit = meta.value()?.parse()?;
        if settings.iter().any(|s| s.key == key) {
            report(syn::Error::new(key.span(), format!("duplicate option `{name}`")));
            return Ok(());
        }
        match setting(&key, &value) {
            Ok(setting) => settings.push(setting),
            Err(error) => report(error),
        }
        Ok(())
    });
    parser.parse2(args)?;
    match errors {
        Some(errors) => Err(errors),
        None => Ok(settings),
    }
}

/// Consumes `= value` after a rejected key, so that later keys are still checked.
fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    }
    Ok(())
}

fn setting(key: &Ident, value: &Lit) -> syn::Result<Setting> {
    let name = key.to_string();
    let wrong = |expected: &str| syn::Error::new(value.span(), format!("`{name}` takes {expected}"));
    let plain = |call: TokenStream| {
        Ok(Setting {
            key: key.clone(),
            call,
            signal: None,
        })
    };
    match name.as_str() {
        "socket_path" => match value {
            Lit::Str(path) if !path.value().is_empty() => plain(quote!(.socket_path(#path))),
            _ => Err(wrong(
                "a path as a non-empty string, like \"/run/app/manhole.sock\"",
            )),
        },
        "activate_on" | "oneshot_on" | "stack_signal" => {
            let signal = match value {
                Lit::Str(text) => {
                    signals::check_name(&text.value()).map_err(|e| syn::Error::new(text.span(), e))?
                }
                Lit::Int(number) => {
                    let n: u64 = number.base10_parse()?;
                    signals::check_number(n).map_err(|e| syn::Error::new(number.span(), e))?;
                    n.to_string()
                }
                _ => return Err(wrong("a signal name like \"USR1\" or \"SIGUSR1\", or its number")),
            };
            let ends_process =
                ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "15", "2", "1", "3"].contains(&signal.as_str());
            if name != "stack_signal" && ends_process {
                return Err(syn::Error::new(
                    value.span(),
                    format!(
                        "`{name}` cannot take {signal}: it must keep ending the process; use USR1, USR2 or RTMIN+N"
                    ),
                ));
            }
            let arg = match value {
                Lit::Int(number) => quote!(#number),
                _ => {
                    let text = LitStr::new(&signal, value.span());
                    quote!(#text)
                }
            };
            Ok(Setting {
                key: key.clone(),
                call: quote!(.#key(#arg)),
                signal: Some((signal, value.span())),
            })
        }
        "thread" | "patch_fork" | "strict" | "verbose" | "daemon_connection" | "redirect_stderr" => {
            match value {
                Lit::Bool(flag) => plain(quote!(.#key(#flag))),
                _ => Err(wrong("true or false")),
            }
        }
        "max_sessions" => match value {
            Lit::Int(number) if number.base10_parse::<usize>().is_ok_and(|n| n > 0) => {
                plain(quote!(.max_sessions(#number)))
            }
            _ => Err(wrong("a whole number greater than 0")),
        },
        "reinstall_delay" | "idle_timeout" | "oneshot_timeout" => match value {
            Lit::Str(text) => {
                let millis = duration_millis(&text.value())
                    .ok_or_else(|| wrong("a duration as a string: \"500ms\", \"30s\", \"5m\" or \"1h\""))?;
                plain(quote!(.#key(::core::time::Duration::from_millis(#millis))))
            }
            _ => Err(wrong(
                "a duration as a string: \"500ms\", \"30s\", \"5m\" or \"1h\"",
            )),
        },
        "verbose_destination" => match value {
            Lit::Int(fd) if fd.base10_parse::<i32>().is_ok_and(|fd| fd >= 0) => {
                plain(quote!(.verbose_destination(#fd)))
            }
            Lit::Str(text) if text.value() == "log" => {
                plain(quote!(.verbose_destination(::manhole::VerboseDestination::Log)))
            }
            Lit::Str(text) if text.value() == "stderr" => {
                plain(quote!(.verbose_destination(::manhole::VerboseDestination::Stderr)))
            }
            Lit::Str(text) if !text.value().is_empty() => plain(quote!(.verbose_destination(#text))),
            _ => Err(wrong(
                "a file descriptor number, \"stderr\", \"log\" or a file path",
            )),
        },
        "sigmask" => match value {
            Lit::Str(text) => {
                let list = text.value();
                match list.trim() {
                    "all" => plain(quote!(.sigmask(::manhole::SigMask::all()))),
                    "none" => plain(quote!(.sigmask(::manhole::SigMask::none()))),
                    list => {
                        let names = list
                            .split(['|', ' '])
                            .filter(|s| !s.is_empty())
                            .map(|n| {
                                let upper = n.to_ascii_uppercase();
                                let bare = upper.strip_prefix("SIG").unwrap_or(&upper).to_owned();
                                if signals::NAMES.contains(&bare.as_str()) || bare.starts_with("RT") {
                                    Ok(bare)
                                } else {
                                    Err(syn::Error::new(
                                        text.span(),
                                        format!("unknown signal {n:?} in sigmask"),
                                    ))
                                }
                            })
                            .collect::<syn::Result<Vec<String>>>()?;
                        if names.is_empty() {
                            return Err(wrong(
                                "\"all\", \"none\", or signal names joined by |, like \"TERM|INT\"",
                            ));
                        }
                        plain(quote!(.sigmask(::manhole::SigMask::only([#(#names),*]))))
                    }
                }
            }
            _ => Err(wrong(
                "\"all\", \"none\", or signal names joined by |, like \"TERM|INT\"",
            )),
        },
        _ => Err(syn::Error::new(key.span(), format!("unknown option `{name}`"))),
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"` in milliseconds.
fn duration_millis(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits.parse().ok()?;
    let factor = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    amount.checked_mul(factor)
}

/// Checks combinations: one signal cannot both activate and serve one-shot sessions.
fn check(settings: Vec<Setting>) -> syn::Result<Vec<Setting>> {
    let signal_of = |key: &str| {
        settings
            .iter()
            .find(|s| s.key == key)
            .and_then(|s| s.signal.clone())
    };
    if let (Some((a, _)), Some((o, span))) = (signal_of("activate_on"), signal_of("oneshot_on"))
        && a != o
    {
        return Err(syn::Error::new(
            span,
            "activate_on and oneshot_on cannot be combined: one listens for good once activated, the other serves one session per signal",
        ));
    }
    let manual = settings
        .iter()
        .find(|s| s.key == "thread")
        .is_some_and(|s| s.call.to_string().contains("false"));
    if let (true, Some((_, span))) = (manual, signal_of("activate_on")) {
        return Err(syn::Error::new(
            span,
            "thread = false is manual mode (handle_oneshot); it cannot wait for activate_on",
        ));
    }
    if let (Some((a, _)), Some((o, span))) = (signal_of("activate_on"), signal_of("oneshot_on"))
        && a == o
    {
        return Err(syn::Error::new(
            span,
            format!(
                "activate_on and oneshot_on are both {a}; one signal cannot both start the listener and serve a single session"
            ),
        ));
    }
    Ok(settings)
}

fn install_first(function: ItemFn, settings: &[Setting]) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let calls = settings.iter().map(|s| &s.call);
    let stmts = &block.stmts;
    let span = sig.ident.span();
    let prologue = quote::quote_spanned! {span=>
        ::manhole::__private::main_prologue(::manhole::Options::new() #(#calls)*);
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #prologue
            #(#stmts)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_millis("500ms"), Some(500));
        assert_eq!(duration_millis("2m"), Some(120_000));
        assert_eq!(duration_millis("5"), None);
        assert_eq!(duration_millis("1.5s"), None);
        assert_eq!(duration_millis("3d"), None);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signals::check_name("usr1").unwrap(), "SIGUSR1");
        assert_eq!(signals::check_name("SIGRTMIN+3").unwrap(), "SIGRTMIN+3");
        let err = signals::check_name("USR3").unwrap_err();
        assert!(err.contains("USR1") && err.contains("RTMIN+N"), "{err}");
        assert!(
            signals::check_name("KILL")
                .unwrap_err()
                .contains("cannot be used")
        );
        assert!(signals::check_number(10).is_ok());
        assert!(
            signals::check_number(9).is_err()
                && signals::check_number(0).is_err()
                && signals::check_number(65).is_err()
        );
    }
}
