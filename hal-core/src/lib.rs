#![no_std]
pub mod memmap;
