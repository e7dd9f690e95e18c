#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn args(instance_type: &str) -> MaxPodsArgs {
    MaxPodsArgs {
        instance_type: instance_type.to_owned(),
        prefix_delegation: false,
        cni_custom_networking: false,
        max_eni: None,
        source: Source::Table,
    }
}

fn from_table(a: &MaxPodsArgs) -> u32 {
    max_pods(&table_limits(&a.instance_type).unwrap(), a)
}

#[test]
fn published_values_from_the_table() {
    assert_eq!(from_table(&args("t3.medium")), 17);
    assert_eq!(from_table(&args("m5.large")), 29);
    assert_eq!(from_table(&args("m5.24xlarge")), 737);
    assert_eq!(from_table(&args("t2.micro")), 4);
    assert_eq!(from_table(&args("m5.4xlarge")), 234);
    assert_eq!(from_table(&args("m7i.large")), 29);
    assert_eq!(from_table(&args("c7g.16xlarge")), 737);
    assert_eq!(from_table(&args("p5.48xlarge")), 100);
}

#[test]
fn prefix_delegation_caps_at_110_below_30_vcpus_else_250() {
    let pd = |t: &str| MaxPodsArgs {
        prefix_delegation: true,
        ..args(t)
    };
    assert_eq!(from_table(&pd("m5.large")), 110);
    assert_eq!(from_table(&pd("t3.medium")), 110);
    assert_eq!(from_table(&pd("m5.24xlarge")), 250);
    assert_eq!(from_table(&pd("m5.8xlarge")), 250);
    // Not Nitro: addresses, as without prefix delegation.
    assert_eq!(from_table(&pd("m4.large")), 20);
    // A small Nitro type whose raw prefix figure is under the cap.
    assert_eq!(from_table(&pd("t3.nano")), 2 * 16 + 2);
}

#[test]
fn custom_networking_takes_one_eni_and_max_eni_caps() {
    let custom = MaxPodsArgs {
        cni_custom_networking: true,
        ..args("m5.large")
    };
    assert_eq!(from_table(&custom), 2 * 9 + 2);
    let capped = MaxPodsArgs {
        max_eni: Some(1),
        ..args("m5.24xlarge")
    };
    assert_eq!(from_table(&capped), 49 + 2);
    // MAX_ENI above the type's limit changes nothing.
    let above = MaxPodsArgs {
        max_eni: Some(40),
        ..args("m5.large")
    };
    assert_eq!(from_table(&above), 29);
    let both = MaxPodsArgs {
        max_eni: Some(2),
        cni_custom_networking: true,
        ..args("m5.24xlarge")
    };
    assert_eq!(from_table(&both), 49 + 2);
}

#[test]
fn an_unknown_type_is_an_error_naming_it() {
    let err = table_limits("x9.nonexistent").unwrap_err();
    assert!(err.to_string().contains("x9.nonexistent"), "{err}");
}

#[test]
fn the_command_line_parses() {
    let line = [
        "ipamd",
        "max-pods",
        "--instance-type",
        "m5.large",
        "--prefix-delegation",
        "--cni-custom-networking",
        "--max-eni",
        "2",
        "--source",
        "table",
    ];
    let parsed: Vec<std::ffi::OsString> = line.iter().map(Into::into).collect();
    match crate::cli::subcommand(&parsed) {
        Some(Ok(crate::cli::Command::MaxPods(a))) => {
            assert_eq!(a.instance_type, "m5.large");
            assert!(a.prefix_delegation && a.cni_custom_networking);
            assert_eq!((a.max_eni, a.source), (Some(2), Source::Table));
        }
        other => panic!("{other:?}"),
    }
    let zero: Vec<std::ffi::OsString> = [
        "ipamd",
        "max-pods",
        "--instance-type",
        "m5.large",
        "--max-eni",
        "0",
    ]
    .iter()
    .map(Into::into)
    .collect();
    assert!(matches!(crate::cli::subcommand(&zero), Some(Err(_))));
}
